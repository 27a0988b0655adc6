#!/bin/sh
# SPDX-License-Identifier: MIT
# The malloc-failure pass: runs Check suites with the allocation failure
# injector preloaded (libfailinject.so, see failinject.c), which fails
# every Nth allocation made inside libtroupe. The tests' own assertions
# fail when a call they make returns TR_ENOMEM, and a test that waits for
# something its handler could not send times out: neither counts. What
# counts is a crash inside the library: a signal whose innermost frame
# outside libc is in libtroupe (the injector's report), or a sanitizer
# report. Exits 1 if there was one, 0 otherwise.
#
# usage: sh tests/failinject/run.sh <builddir> [suite ...]
#   suites default to the ones listed below; environment:
#   FI_EVERY (default "11 97"), FI_SEEDS (default "1 2"): one run per
#   rate and seed, each failing about one library allocation in N (for
#   each N of FI_EVERY) as a generator seeded with the seed picks them,
#   after the first FI_AFTER (default 200) of each test's process, which
#   lets most fixtures start a runtime; FI_SUITE_SECONDS (default 60)
#   bounds each run. A low rate lets the tests get further into the
#   library before their own assertions stop them.
set -u

b=${1:?usage: run.sh <builddir> [suite ...]}
shift
b=$(cd "$b" && pwd) || exit 2
suites=${*:-"check_msg check_runtime check_actor check_ask check_handle
  check_priority check_failure check_supervisor check_mailbox
  check_chan_mpsc check_chan_oneshot check_chan_watch check_chan_broadcast
  check_chan_select check_timer"}
everies=${FI_EVERY:-"11 97"}
seeds=${FI_SEEDS:-"1 2"}
limit=${FI_SUITE_SECONDS:-60}

progs=
for s in $suites; do progs="$progs tests/$s"; done
# shellcheck disable=SC2086
make -s -C "$b" tests/failinject/libfailinject.la $progs >/dev/null ||
  exit 2
so="$b/tests/failinject/.libs/libfailinject.so"
[ -f "$so" ] || { echo "run.sh: no $so" >&2; exit 2; }

logs="$b/tests/failinject/logs"
rm -rf "$logs"
mkdir -p "$logs"

# one suite under one rate and seed; its log is
# $logs/<suite>.<rate>.<seed>.log
one() {
  log="$logs/$1.$every.$2.log"
  env LD_PRELOAD="$so" CK_FORK=yes CK_VERBOSITY=normal \
    TROUPE_FI_EVERY="$every" TROUPE_FI_SEED="$2" TROUPE_FI_AFTER="${FI_AFTER:-200}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
    timeout -k 5 "$limit" "$b/tests/$1" >"$log" 2>&1
  echo "exit $?" >>"$log"
}

# two at a time (the machines this runs on have few cores)
for every in $everies; do
for seed in $seeds; do
  # shellcheck disable=SC2086
  set -- $suites
  while [ $# -gt 0 ]; do
    one "$1" "$seed" &
    if [ $# -gt 1 ]; then one "$2" "$seed" & shift; fi
    shift
    wait
  done
done
done

crashes=0
for log in "$logs"/*.log; do
  name=$(basename "$log" .log)
  lib=$(grep -c 'failinject: crash in libtroupe' "$log")
  san=$(grep -c -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer' "$log")
  other=$(grep -c 'failinject: crash outside libtroupe' "$log")
  summary=$(grep -E '^[0-9]+%: Checks' "$log" | tail -n 1)
  tail=$(tail -n 1 "$log")
  printf '%-28s %s (%s)' "$name" "${summary:-no summary}" "$tail"
  [ "$other" -gt 0 ] && printf ', %s crash(es) in test code' "$other"
  if [ "$lib" -gt 0 ] || [ "$san" -gt 0 ]; then
    printf ' -- LIBRARY CRASH\n'
    crashes=$((crashes + 1))
    grep -B2 -A40 -E 'failinject: crash in libtroupe|ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer' "$log" | head -n 80
  else
    printf '\n'
  fi
done
echo "malloc-failure pass: 1 library allocation in N fails, N in $everies, seeds $seeds: $crashes run(s) with a library crash (logs in $logs)"
[ "$crashes" -eq 0 ]
