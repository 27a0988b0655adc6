#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks the names libtroupe.so exports, run by make check:
#  (a) every exported symbol is public: tr_ but not tr__, nothing else
#      (no allocator or other library leaking through);
#  (b) every exported function is declared TR_EXTERN in an installed header,
#      every exported message type is declared there too;
#  (c) every exported function is mentioned in doc/; the ones that are not
#      yet are listed in tools/undocumented.txt, and only a function missing
#      from both fails (the list is what remains to be documented);
#  (e) the naming rule tr_<noun>_<verb> (nouns and exceptions listed below);
#  (d) what can be checked of the naming rule: names are lowercase words
#      joined by underscores, and no name is declared twice in the headers.
# Skips (77) without nm or without a shared library (--disable-shared).
# Lists of names are passed unquoted on purpose, to be split into words.
# shellcheck disable=SC2086,SC2012,SC2013
set -u

skip() { echo "SKIP: $*"; exit 77; }
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
so=$top_builddir/.libs/libtroupe.so
command -v nm >/dev/null 2>&1 || skip "nm not found"
[ -f "$so" ] || skip "no shared library ($so)"

tmp=$(mktemp -d -t troupe-symbols.XXXXXX) || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0
fail() { echo "FAIL: $*"; status=1; }

# Defined dynamic symbols as "type name", the version suffix dropped;
# sanitizer runtimes and the linker's own symbols are not ours.
nm -D --defined-only "$so" >"$tmp/nm" || { echo "nm failed"; exit 99; }
awk '$2 != "A" { sub(/@.*/, "", $3); print $2, $3 }' "$tmp/nm" |
  grep -v -e ' _init$' -e ' _fini$' -e ' _edata$' -e ' _end$' \
    -e ' __bss_start$' -e ' __odr_asan\.' -e ' __asan_' -e ' __ubsan_' \
    -e ' __tsan_' -e ' __sancov' | sort -u >"$tmp/syms"
[ -s "$tmp/syms" ] || { echo "no symbols read from $so"; exit 99; }
awk '$1 == "T" || $1 == "W" || $1 == "i" { print $2 }' "$tmp/syms" >"$tmp/funcs"
awk '$1 != "T" && $1 != "W" && $1 != "i" { print $2 }' "$tmp/syms" >"$tmp/data"

# (a) only public names.
bad=$(awk '{ print $2 }' "$tmp/syms" | grep -v '^tr_[a-z0-9]' || true)
[ -z "$bad" ] || fail "exported symbols outside tr_ or inside tr__:" $bad

# (d) lowercase words joined by single underscores (message descriptors
# end in _t__type, made by TR_MESSAGE_DEFINE).
bad=$(awk '{ print $2 }' "$tmp/syms" | sed 's/_t__type$/_t/' |
  grep -v '^tr_[a-z0-9]\{1,\}\(_[a-z0-9]\{1,\}\)*$' || true)
[ -z "$bad" ] || fail "exported names that are not lowercase_words:" $bad

# (e) the naming rule tr_<noun>_<verb> (doc/design.md): every exported
# function starts with one of the API's nouns, or is one of the core actor
# verbs that, as Erlang's built-in functions, act on the calling actor.
nouns='runtime actor ctx chan msg handle join timer io file tcp sup err blocking http ws tls stream'
verbs='spawn spawn_ex send send_ex send_group ask ask_timeout reply reply_to link unlink monitor demonitor strerror version resolve'
bad=""
for f in $(cat "$tmp/funcs"); do
  n=${f#tr_}
  ok=0
  for v in $verbs; do [ "$n" = "$v" ] && ok=1; done
  for w in $nouns; do case $n in "$w"_*) ok=1 ;; esac; done
  [ $ok = 1 ] || bad="$bad $f"
done
[ -z "$bad" ] || fail "exported functions outside the naming rule tr_<noun>_<verb>:" $bad

# The installed headers: the sources' include/ plus the generated ones.
headers=$(ls "$top_srcdir"/include/troupe.h "$top_srcdir"/include/troupe/*.h \
  "$top_builddir"/include/troupe/*.h 2>/dev/null | sort -u)
[ -n "$headers" ] || { echo "no headers under $top_srcdir/include"; exit 99; }

# Every TR_EXTERN declaration, comments removed and joined up to its ';',
# reduced to the declared name (the identifier before the first '(' for a
# function, the last identifier for an object).
cat $headers | sed 's|/\*.*\*/||g' | awk '
  /^[ \t]*#/ || /\\$/ { next }
  decl != "" || /(^|[ \t])TR_EXTERN[ \t]/ {
    decl = decl " " $0
    if (decl ~ /;/) {
      d = decl; decl = ""
      if (d ~ /\(/) { sub(/[ \t]*\(.*/, "", d) } else { sub(/[ \t]*;.*/, "", d) }
      n = split(d, w, /[^A-Za-z0-9_]+/)
      while (n > 0 && w[n] == "") n--
      if (n > 0) print w[n]
    }
  }' | sort >"$tmp/declared.all"
sort -u "$tmp/declared.all" >"$tmp/declared"

# (d) no name declared twice.
dup=$(uniq -d "$tmp/declared.all")
[ -z "$dup" ] || fail "declared more than once in the headers:" $dup

# (b) exported functions are declared; exported message types are declared
# with TR_MESSAGE_TYPE, TR_MESSAGE_DECLARE, TR_IO_MESSAGE or by hand.
bad=$(comm -23 "$tmp/funcs" "$tmp/declared")
[ -z "$bad" ] || fail "exported but not declared TR_EXTERN in an installed header:" $bad
for d in $(cat "$tmp/data"); do
  grep -q "^$d\$" "$tmp/declared" && continue
  t=${d%__type}
  if [ "$t" != "$d" ] &&
    grep -Eq "TR_(MESSAGE_TYPE|MESSAGE_DECLARE|IO_MESSAGE)\([[:space:]]*${t}[[:space:]]*[,)]" $headers; then
    continue
  fi
  fail "exported object $d is not declared in an installed header"
done

# (c) exported functions are documented somewhere in doc/.
docs=$(ls "$top_srcdir"/doc/*.md "$top_srcdir"/doc/man/* 2>/dev/null)
allow=$top_srcdir/tools/undocumented.txt
: >"$tmp/undoc"
for f in $(cat "$tmp/funcs"); do
  grep -qw -- "$f" $docs || echo "$f" >>"$tmp/undoc"
done
grep -v -e '^#' -e '^[[:space:]]*$' "$allow" 2>/dev/null | sort -u >"$tmp/allow"
if [ -s "$tmp/undoc" ]; then
  echo "exported functions not yet documented in doc/ ($(wc -l <"$tmp/undoc")):"
  sed 's/^/  /' "$tmp/undoc"
fi
new=$(sort "$tmp/undoc" | comm -23 - "$tmp/allow")
[ -z "$new" ] || fail "new functions without documentation in doc/ (document them; tools/undocumented.txt lists only the old ones):" $new
stale=$(sort "$tmp/undoc" | comm -13 - "$tmp/allow")
[ -z "$stale" ] ||
  echo "note: documented or gone now, to be removed from tools/undocumented.txt:" $stale

[ "$status" -eq 0 ] && echo "PASS: $(wc -l <"$tmp/syms") exported symbols checked"
exit "$status"
