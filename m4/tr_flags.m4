# SPDX-License-Identifier: MIT
# Compiler and linker flag probes for configure.ac. A flag is kept only when
# the compiler (or the linker) accepts it with warnings made errors, so a
# compiler that merely warns about an unknown option does not get it.

# TR_CHECK_CFLAG(FLAG, VARIABLE)
# Appends FLAG to VARIABLE when $CC compiles a trivial program with it.
AC_DEFUN([TR_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([tr_cache], [tr_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [tr_cache], [
    tr_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([tr_cache], [yes])], [AS_VAR_SET([tr_cache], [no])])
    CFLAGS=$tr_save_CFLAGS])
  AS_VAR_IF([tr_cache], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([tr_cache])
])

# TR_CHECK_LDFLAG(FLAG, VARIABLE, [EXTRA-FILE-CONTENT])
# Appends FLAG to VARIABLE when $CC links a trivial program with it.
AC_DEFUN([TR_CHECK_LDFLAG], [
  AS_VAR_PUSHDEF([tr_cache], [tr_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [tr_cache], [
    tr_save_LDFLAGS=$LDFLAGS
    LDFLAGS="$LDFLAGS $1"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([tr_cache], [yes])], [AS_VAR_SET([tr_cache], [no])])
    LDFLAGS=$tr_save_LDFLAGS])
  AS_VAR_IF([tr_cache], [yes], [$2="$$2 $1"])
  AS_VAR_POPDEF([tr_cache])
])
