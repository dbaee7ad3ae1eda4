#!/bin/sh
# test.sh — run the test suites against the binaries in $BUILD and end with
# one line that counts passes and failures. Usage: tools/test.sh [unit|api]
#
# Under SANITIZE builds, AddressSanitizer, LeakSanitizer and UBSan abort on
# the first finding; the API tests also fail when sluiced does not exit 0
# after SIGTERM, which is how a leak at shutdown shows up.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
WHAT=${1:-all}
case $BUILD in /*) export SLUICE_BUILD="$BUILD" ;; *) export SLUICE_BUILD="$PWD/$BUILD" ;; esac
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/spec/lsan.supp:print_suppressions=0"

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Add "# <suite>: P passed, F failed" lines from $log to the totals.
count() {
  p=$(sed -n 's/^# .*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^# .*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p))
  failed=$((failed + f))
}

if [ "$WHAT" = all ] || [ "$WHAT" = unit ]; then
  echo "== C unit tests"
  for t in "$BUILD"/unit/test_*; do
    [ -x "$t" ] || continue
    if [ -n "${VALGRIND:-}" ]; then
      valgrind -q --error-exitcode=87 --leak-check=full "$t" > "$log" 2>&1
    else
      "$t" > "$log" 2>&1
    fi
    rc=$?
    cat "$log"
    count
    if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
      echo "# $t: exited $rc without a failing test (crash or sanitizer finding)"
      failed=$((failed + 1))
    fi
  done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = api ] || [ "$WHAT" = ui ]; then
  dirs="spec/api/ spec/ui/"
  [ "$WHAT" = api ] && dirs="spec/api/"
  [ "$WHAT" = ui ] && dirs="spec/ui/"
  echo "== API and browser tests (node --test: real sluiced, Redis, workers, BullMQ, Chromium)"
  node --test --test-concurrency=2 --test-timeout=180000 --test-reporter=spec $dirs > "$log" 2>&1
  rc=$?
  cat "$log"
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
    echo "# API tests exited $rc without a failing test"
    failed=$((failed + 1))
  fi
fi

# The same API suite again on PostgreSQL, plus the replica tests, after the
# store conformance suite on the same server.
if [ "$WHAT" = all ] || [ "$WHAT" = pg ]; then
  echo "== store and API tests on PostgreSQL (a private server as the postgres user)"
  pgdir=$(mktemp -d /tmp/sluice-pg.XXXXXX)
  pgport=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  if url=$(tools/pg.sh start "$pgdir" "$pgport" 2> "$log"); then
    # The PostgreSQL halves of the unit tests (the unit pass ran SQLite's):
    # the store conformance suite and leadership.
    for t in test_store test_leader; do
      SLUICE_TEST_PG="$url" "$BUILD/unit/$t" postgres > "$log" 2>&1
      rc=$?
      cat "$log"
      count
      if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then failed=$((failed + 1)); fi
    done
    # postgres.test.mjs stops and restarts the shared server (an outage
    # test): it runs alone, after the files that only need it up.
    shared=$(ls spec/api/*.test.mjs | grep -v '/postgres\.test\.mjs$')
    for files in "$shared" spec/api/postgres.test.mjs; do
      SLUICE_TEST_PG="$url" SLUICE_TEST_PG_DIR="$pgdir" node --test --test-concurrency=2 \
        --test-timeout=180000 --test-reporter=spec $files > "$log" 2>&1
      rc=$?
      cat "$log"
      p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
      f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
      passed=$((passed + ${p:-0}))
      failed=$((failed + ${f:-0}))
      if [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
    done
  else
    cat "$log"
    echo "# PostgreSQL did not start: counted as a failure"
    failed=$((failed + 1))
  fi
  tools/pg.sh stop "$pgdir"
fi

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
