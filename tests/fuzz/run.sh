#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets with clang (ASan + UBSan) straight from the
# sources and runs each for a while over its corpus in tests/fuzz/corpus.
#   tests/fuzz/run.sh [seconds per target, default 60]
# The HTTP codec's three targets (requests, responses, chunked bodies) and
# the WebSocket target get a quarter of that each: their inputs are small
# and each run is short.
# Inputs grow up to 2 MiB, past the decoder's default limit of 1 MiB (and
# the target expands inputs that start with 0xc1 to up to 16 MiB, see
# fuzz_msg_decode.c); no single allocation may exceed 64 MB: a decoded
# message's memory is bounded by its limits whatever the input declares.
# WebSocket streams grow up to 70000 bytes, past a 64 KiB frame.
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
out=${TMPDIR:-/tmp}/troupe-fuzz
mkdir -p "$out"
[ -f "$top/config.h" ] || [ -f "$out/config.h" ] ||
  printf '#define TR_SANITIZED 1\n' > "$out/config.h"
# <troupe/version.h> is made by configure from version.h.in: make it here
# from the version in configure.ac, so no configured tree is needed
ver=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([0-9.]*\)\].*/\1/p' "$top/configure.ac")
mkdir -p "$out/troupe"
sed -e "s/@PACKAGE_VERSION@/$ver/" \
  -e "s/@TR_VERSION_MAJOR@/$(echo "$ver" | cut -d. -f1)/" \
  -e "s/@TR_VERSION_MINOR@/$(echo "$ver" | cut -d. -f2)/" \
  -e "s/@TR_VERSION_PATCH@/$(echo "$ver" | cut -d. -f3)/" \
  "$top/include/troupe/version.h.in" > "$out/troupe/version.h"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -I$out -I$top -I$top/include -I$top/lib -I$top/chan -I$top/io -I$top/net $(pkg-config --cflags msgpack libssl libcrypto)"
libs="$(pkg-config --libs msgpack libssl libcrypto) -lpthread"
# the whole library (the runtime pulls in the channels, timers and I/O);
# without a configured tree only the portable poll backend is built
srcs=$(ls "$top"/lib/*.c "$top"/chan/*.c "$top"/io/*.c "$top"/net/*.c \
  "$top"/actors/*.c)
clang $flags -o "$out/fuzz_msg_decode" "$top/tests/fuzz/fuzz_msg_decode.c" \
  $srcs $libs
work="$out/corpus_msg_decode"
mkdir -p "$work"
cp "$top"/tests/fuzz/corpus/msg_decode/* "$work"/
"$out/fuzz_msg_decode" -max_total_time="$secs" -max_len=2097152 \
  -malloc_limit_mb=64 -rss_limit_mb=1024 "$work"

# the HTTP codec is pure code: each target is built from its one source
hsecs=$(((secs + 3) / 4))
for t in http_request http_response http_chunked; do
  clang $flags -o "$out/fuzz_$t" "$top/tests/fuzz/fuzz_$t.c" \
    "$top/net/http_parse.c" $libs
  work="$out/corpus_$t"
  mkdir -p "$work"
  cp "$top"/tests/fuzz/corpus/$t/* "$work"/
  "$out/fuzz_$t" -max_total_time="$hsecs" -max_len=8192 \
    -malloc_limit_mb=64 -rss_limit_mb=1024 "$work"
done
# The WebSocket codec: the parser as server and client over the input,
# whole and split (see fuzz_ws_frame.c); only its own file is needed.
clang $flags -o "$out/fuzz_ws_frame" "$top/tests/fuzz/fuzz_ws_frame.c" \
  "$top/net/ws_codec.c" $libs
work="$out/corpus_ws_frame"
mkdir -p "$work"
cp "$top"/tests/fuzz/corpus/ws_frame/* "$work"/
"$out/fuzz_ws_frame" -max_total_time="$hsecs" -max_len=70000 \
  -malloc_limit_mb=64 -rss_limit_mb=1024 "$work"
# the TLS engine: what a peer sends, to a server and to a client engine
# (records are at most 16 KiB and some bytes: longer inputs add nothing)
clang $flags -o "$out/fuzz_tls" "$top/tests/fuzz/fuzz_tls.c" $srcs $libs
work="$out/corpus_tls"
mkdir -p "$work"
cp "$top"/tests/fuzz/corpus/tls/* "$work"/
"$out/fuzz_tls" -max_total_time="$hsecs" -max_len=20000 \
  -malloc_limit_mb=64 -rss_limit_mb=1024 "$work"
