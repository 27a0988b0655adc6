#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# One entry point for a fresh Debian machine:
#   ./dev.sh demo   install what is missing, build, run the flagship example
#   ./dev.sh test   install what is missing, build, run the whole test suite
#                   (make check, the ThreadSanitizer pass over the runtime
#                   tests, make check under address + undefined-behaviour
#                   sanitizers, make distcheck, a short fuzz run) and print
#                   "tests: N passed, N failed"
#   ./dev.sh build  install what is missing and build only
# Builds happen out of tree, in build/, build-tsan/ and build-asan/.
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

packages="build-essential autoconf automake libtool pkg-config \
libjemalloc-dev liburing-dev libmsgpack-dev libssl-dev check time clang libclang-rt-14-dev \
openssl curl python3-websockets"

install_deps() {
  local missing=""
  for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "== installing:$missing"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
}

bootstrap() {
  if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    echo "== autoreconf"
    autoreconf --install --force >/dev/null
  fi
}

build() { # build <dir> [configure args...]
  local dir=$1; shift
  mkdir -p "$dir"
  if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/config.status" ]; then
    echo "== configure $dir $*"
    (cd "$dir" && "$top/configure" -q --enable-werror "$@")
  fi
  echo "== make $dir"
  make -s -C "$dir" -j"$jobs" >/dev/null
}

# Adds up the results of one test run from its logs: Check suites report
# "Checks: N, Failures: F, Errors: E"; other tests count as one each.
passed=0
failed=0
tally() { # tally <build dir> <label>
  local dir=$1 label=$2 p=0 f=0
  while IFS= read -r trs; do
    local log=${trs%.trs}.log res
    res=$(sed -n 's/^:test-result: //p' "$trs" | head -n1)
    local line
    line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n1 || true)
    if [ -n "$line" ]; then
      local n fl er
      n=$(echo "$line" | sed -E 's/Checks: ([0-9]+).*/\1/')
      fl=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
      er=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+)/\1/')
      p=$((p + n - fl - er))
      f=$((f + fl + er))
      # a suite that crashed after its summary still failed
      if [ "$res" != PASS ] && [ $((fl + er)) -eq 0 ]; then f=$((f + 1)); fi
    else
      case "$res" in
        PASS) p=$((p + 1)) ;;
        SKIP) ;;
        *) f=$((f + 1)) ;;
      esac
    fi
  done < <(find "$dir" -name '*.trs' | sort)
  echo "== $label: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

# One Check-suite pass: build <dir> [configure args], make <target>, tally.
suites() { # suites <dir> <label> <make target> [configure args...]
  local dir=$1 label=$2 target=$3; shift 3
  build "$dir" "$@"
  find "$dir" -name '*.trs' -delete
  echo "== make $target ($label)"
  make -C "$dir" -j"$jobs" "$target" || status=1
  tally "$dir" "$label"
}

# One pass/fail step counted as one test; its output goes to <log>, whose
# tail is shown if it fails.
step() { # step <label> <log> <command...>
  local label=$1 log=$2; shift 2
  echo "== $label"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "== $label: passed"
  else
    failed=$((failed + 1))
    tail -n 60 "$log"
    echo "== $label: FAILED"
  fi
}

cmd=${1:-demo}
case "$cmd" in
  demo)
    install_deps
    bootstrap
    build build
    # the examples are make-check programs: build the flagship one by name
    make -s -C build examples/pipeline >/dev/null
    ./build/examples/pipeline "${@:2}"
    ;;
  build)
    install_deps
    bootstrap
    build build
    ;;
  test)
    install_deps
    bootstrap
    status=0
    # .ci/run runs the first README command before this one and passes its
    # result on, so that the summary line counts it
    case "${DEV_DEMO_RESULT:-}" in
      pass) passed=$((passed + 1)); echo "== ./dev.sh demo: passed" ;;
      fail) failed=$((failed + 1)); echo "== ./dev.sh demo: FAILED" ;;
    esac
    suites build "make check" check
    suites build-tsan "ThreadSanitizer" check-runtime --enable-sanitizers=thread
    suites build-asan "AddressSanitizer" check --enable-sanitizers=address,undefined
    # the benchmark programs are not part of make check: build them, so
    # that an API change cannot leave them behind
    step "benchmarks build" build/bench-build.out make -s -C build -j"$jobs" bench
    step distcheck build/distcheck.out make -s -C build -j"$jobs" distcheck
    step "malloc failure (no library crash)" build/failinject.out sh tests/failinject/run.sh build
    # the decoders' fuzz targets build and survive a short run over their
    # corpus (tests/fuzz/run.sh [seconds] runs them for longer)
    step "fuzz (libFuzzer, 20 s per target)" build/fuzz.out \
      env TMPDIR="$top/build" sh tests/fuzz/run.sh 20
    echo "tests: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
    ;;
  *)
    echo "usage: $0 demo|test|build" >&2
    exit 2
    ;;
esac
