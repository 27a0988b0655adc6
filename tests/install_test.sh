#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the built tree into a temporary DESTDIR, then compiles and runs a
# tiny program against the installed copy using only what pkg-config says
# about troupe. Also checks that no internal header is installed and that
# the shared library exports only tr_ names. Skips (77) without pkg-config
# or a C compiler. Writes only below a temporary directory.
set -u

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

: "${top_builddir:=.}"
command -v pkg-config >/dev/null 2>&1 || skip "pkg-config not found"
cc=${CC:-}
if [ -z "$cc" ]; then
  for c in cc gcc clang; do
    if command -v "$c" >/dev/null 2>&1; then cc=$c; break; fi
  done
fi
[ -n "$cc" ] || skip "no C compiler"
make=${MAKE:-make}

top=$(cd "$top_builddir" && pwd) || fail "no top_builddir"
[ -f "$top/troupe.pc" ] || fail "$top/troupe.pc missing"
prefix=$(sed -n 's/^prefix=//p' "$top/troupe.pc")
[ -n "$prefix" ] || fail "no prefix= in troupe.pc"

tmp=$(mktemp -d -t troupe-install.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/root

# The outer make's flags (jobserver, TESTS=...) do not apply here.
( cd "$top" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    "$make" -s install DESTDIR="$dest" ) >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "make install failed"; }

pc=$(find "$dest" -name troupe.pc -path '*pkgconfig*' | head -n 1)
[ -n "$pc" ] || fail "troupe.pc was not installed"
[ -d "$dest$prefix" ] || fail "nothing installed below the prefix $prefix"

PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
flags=$(pkg-config --cflags --libs troupe) || fail "pkg-config troupe failed"
# Some pkg-config versions prefix the sysroot to variables, some do not.
libdir=$dest$(pkg-config --variable=libdir troupe | sed "s|^$dest||")
inc=$dest$(pkg-config --variable=includedir troupe | sed "s|^$dest||")
[ -d "$libdir" ] || fail "libdir $libdir missing"
[ -f "$inc/troupe.h" ] || fail "troupe.h not installed in $inc"

# Only the public headers (those under include/ in the sources, some
# generated from a .in there) are installed; internal ones stay beside their .c files.
if [ -n "${top_srcdir:-}" ] && [ -d "$top_srcdir/include" ]; then
  for h in $(cd "$inc" && find . -name '*.h'); do
    [ -f "$top_srcdir/include/$h" ] || [ -f "$top_srcdir/include/$h.in" ] ||
      fail "installed header $h is not a public header"
  done
fi
for h in internal.h mem.h deque.h park.h runq.h inbox.h; do
  if [ -n "$(find "$dest" -name "$h")" ]; then
    fail "internal header $h was installed"
  fi
done

# A sanitizer build's library needs the sanitizer runtime in the program.
san=$(sed -n 's/^CFLAGS = //p' "$top/Makefile" | tr ' ' '\n' |
  grep '^-fsanitize' | tr '\n' ' ')

cat >"$tmp/t.c" <<'PROG'
#include <stdio.h>
#include <string.h>
#include <troupe.h>

TR_MESSAGE_TYPE(num_t, int v;)
TR_MESSAGE_DEFINE(num_t);

static int on_num(tr_ctx_t *ctx, void *state, void *msg) {
  num_t *r = num_t_new();
  (void)state;
  if (r == NULL)
    return TR_ENOMEM;
  r->v = ((num_t *)msg)->v * 2;
  if (tr_reply(ctx, r) != 0)
    tr_msg_free(r);
  return 0;
}

static const tr_handler_t handlers[] = {{.type = TR_TYPE(num_t), .fn = on_num}};
static const tr_behavior_t doubler = {.name = "doubler",
                                      .handlers = TR_HANDLERS(handlers)};

int main(void) {
  tr_runtime_config_t cfg;
  tr_runtime_t *rt;
  tr_handle_t *h;
  tr_ref_t d;
  num_t *q;
  void *reply = NULL;
  int rc;
  if (strcmp(tr_version(), TR_VERSION_STRING) != 0) {
    fprintf(stderr, "version %s != %s\n", tr_version(), TR_VERSION_STRING);
    return 1;
  }
  if (strcmp(tr_err_name(TR_ENOACTOR), "TR_ENOACTOR") != 0)
    return 1;
  tr_runtime_config_init(&cfg);
  cfg.workers = 1;
  if (tr_runtime_new(&cfg, &rt) != 0 || tr_runtime_start(rt) != 0)
    return 1;
  if (tr_spawn(rt, &doubler, NULL, &d) != 0 || tr_handle_new(rt, &h) != 0)
    return 1;
  q = num_t_new();
  q->v = 21;
  rc = tr_handle_call(h, d, q, 10000, &reply);
  if (rc != 0 || ((num_t *)reply)->v != 42) {
    fprintf(stderr, "call: %s\n", tr_strerror(rc));
    return 1;
  }
  tr_msg_free(reply);
  tr_handle_free(h);
  if (tr_runtime_shutdown(rt, 10000) != 0)
    return 1;
  tr_runtime_free(rt);
  puts("installed troupe works");
  return 0;
}
PROG

# shellcheck disable=SC2086 # word splitting of the flags is intended
"$cc" -std=gnu11 $san -o "$tmp/t" "$tmp/t.c" $flags \
  >"$tmp/cc.log" 2>&1 || { cat "$tmp/cc.log"; fail "compiling against the installed copy failed ($flags)"; }
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/t" ||
  fail "the test program failed against the installed copy"

# Only public names are exported.
if command -v nm >/dev/null 2>&1; then
  so=$(find "$libdir" -name 'libtroupe.so*' -type f | head -n 1)
  if [ -n "$so" ]; then
    bad=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
      grep -v -e '^tr_[a-z0-9]' -e '^_init$' -e '^_fini$' -e '^_edata$' \
        -e '^_end$' -e '^__bss_start$' -e '^__odr_asan\.tr_' \
        -e '^__asan_' -e '^__ubsan_' -e '^__tsan_' || true)
    bad2=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^tr__' || true)
    [ -z "$bad$bad2" ] || fail "non-public symbols exported: $bad $bad2"
  fi
fi
echo "PASS: install test"
exit 0
