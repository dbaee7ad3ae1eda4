#!/bin/sh
# fuzz.sh — build the libFuzzer targets of spec/fuzz/ and run each for a
# bounded time (docs/fuzzing.md). What `make fuzz` runs.
#   tools/fuzz.sh                  build, then fuzz every target FUZZ_SECONDS each
#   tools/fuzz.sh report redact    only these targets (fuzz_<name>.c)
#   tools/fuzz.sh --replay [T...]  build, then run every seed and crash input
#                                  once: a fast regression check
#   tools/fuzz.sh --build          build only
# Environment: FUZZ_SECONDS (60), FUZZ_MAX_LEN (8192, bytes per input),
# FUZZ_ARGS (more libFuzzer flags), BUILD (build; targets go to $BUILD/fuzz).
#
# Seeds come from spec/fuzz/corpus/<target>/ and are only read; new inputs
# go to $BUILD/fuzz/work/<target>/ (kept, so the next run starts further).
# An input that crashes, leaks, times out or breaks a property is copied to
# spec/fuzz/crashes/<target>/ to be committed as a regression input, shown,
# and the script exits 1 after the other targets ran.
#
# The compiler is Debian's clang with its fuzzer runtime; as root they are
# installed when missing, as another user the script names the command.

# Whole file: -nt is in dash (Debian's sh), as deps.sh uses it; the quotes
# around the version in CFLAGS are meant for the compiler, as in the Makefile.
# shellcheck disable=SC3013,SC2089,SC2090
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-8192}
FUZZ_ARGS=${FUZZ_ARGS:-}
PKGS="lua5.4 jansson libmicrohttpd sqlite3 openssl hiredis libpq libcurl"
CC=clang
OUT=$BUILD/fuzz
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)

mode=fuzz
case ${1:-} in
--replay) mode=replay; shift ;;
--build) mode=build; shift ;;
-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
esac

# Targets: every spec/fuzz/fuzz_<name>.c, or the names given.
all_targets=$(for f in spec/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done | tr '\n' ' ')
all_targets=${all_targets% }
targets=${*:-$all_targets}
for t in $targets; do
  [ -f "spec/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target '$t' (have: $all_targets)" >&2; exit 2; }
done

# ---- tools -------------------------------------------------------------------------

tools/deps.sh build

fuzzer_links() {
  dir=$(mktemp -d)
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$dir/t.c"
  ok=0
  command -v $CC >/dev/null 2>&1 &&
    $CC -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1 && ok=1
  rm -rf "$dir"
  [ $ok = 1 ]
}

if ! fuzzer_links; then
  # clang only recommends its runtime, and Debian installs no recommends here.
  want="clang libclang-rt-dev"
  if [ "$(id -u)" -ne 0 ]; then
    echo "sluice: the fuzz targets need clang with its fuzzer runtime; install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends $want" >&2
    exit 1
  fi
  echo "installing: $want"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $want
  fuzzer_links || { echo "sluice: clang -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

# ---- build -------------------------------------------------------------------------
# The engine is compiled once with coverage and sanitizers into an archive,
# so each target links only the modules it reaches.

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Iengine -DSLUICE_VERSION=\"$VERSION\"
        $(pkg-config --cflags $PKGS)"
LDLIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
ENGINE_FLAGS="$CFLAGS $SAN -fsanitize=fuzzer-no-link"

mkdir -p "$OUT/obj" "$OUT/gen"
# Flags changed (another clang, other packages): rebuild everything.
echo "$CC $ENGINE_FLAGS" | cmp -s - "$OUT/.flags" 2>/dev/null || {
  rm -f "$OUT"/obj/*.o "$OUT"/libengine.a
  echo "$CC $ENGINE_FLAGS" > "$OUT/.flags"
}

# shellcheck disable=SC2012
newest_header=$(ls -t engine/*.h | head -n 1)
stale=""
for src in engine/*.c; do
  name=$(basename "$src" .c)
  case $name in main|sluicectl) continue ;; esac
  obj=$OUT/obj/$name.o
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
    stale="$stale $src"
  fi
done
if [ ! -f "$OUT/gen/migrations.c" ] || [ -n "$(find db -name '*.sql' -newer "$OUT/gen/migrations.c")" ]; then
  tools/embed-migrations.sh "$OUT/gen/migrations.c"
  stale="$stale $OUT/gen/migrations.c"
fi
if [ ! -f "$OUT/gen/autoscale_lib_lua.c" ] || [ engine/autoscale_lib.lua -nt "$OUT/gen/autoscale_lib_lua.c" ]; then
  tools/embed-lua.sh engine/autoscale_lib.lua autoscale_lib_lua "$OUT/gen/autoscale_lib_lua.c"
  stale="$stale $OUT/gen/autoscale_lib_lua.c"
fi
if [ -n "$stale" ]; then
  echo "fuzz: compiling$stale" | sed "s| engine/| |g"
  # shellcheck disable=SC2086
  printf '%s\n' $stale | xargs -P "$(nproc)" -I{} sh -c \
    'src=$1; shift; exec "$@" -c "$src" -o "'"$OUT"'/obj/$(basename "$src" .c).o"' _ {} \
    $CC $ENGINE_FLAGS
  rm -f "$OUT/libengine.a"
fi
[ -f "$OUT/libengine.a" ] || ar rcs "$OUT/libengine.a" "$OUT"/obj/*.o

for t in $targets; do
  bin=$OUT/fuzz_$t
  # fuzz_request #includes engine .c files, so any engine change counts.
  if [ ! -f "$bin" ] || [ -n "$(find spec/fuzz engine "$OUT/libengine.a" -newer "$bin" \( -name '*.[ch]' -o -name '*.a' \) | head -n 1)" ]; then
    echo "fuzz: linking fuzz_$t"
    # shellcheck disable=SC2086
    $CC $CFLAGS $SAN -fsanitize=fuzzer -Ispec/fuzz "spec/fuzz/fuzz_$t.c" "$OUT/libengine.a" \
        $LDLIBS -o "$bin"
  fi
done
[ "$mode" = build ] && exit 0

# ---- run ---------------------------------------------------------------------------

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:handle_abort=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/spec/lsan.supp:print_suppressions=0"

# Show an input the way a reviewer can read it: text as is, the rest in hex.
show_input() {
  echo "---- $1 ($(wc -c < "$1") bytes)"
  if LC_ALL=C grep -q '[^[:print:][:space:]]' "$1"; then od -A d -c "$1" | head -n 40
  else head -c 2000 "$1"; echo; fi
  echo "----"
}

failed=""
if [ "$mode" = replay ]; then
  total=0
  for t in $targets; do
    files=$(find "spec/fuzz/corpus/$t" "spec/fuzz/crashes/$t" -type f 2>/dev/null | sort)
    [ -n "$files" ] || continue
    n=$(echo "$files" | wc -l)
    total=$((total + n))
    # shellcheck disable=SC2086
    if "$OUT/fuzz_$t" -timeout=10 $files > "$OUT/replay_$t.log" 2>&1; then
      echo "fuzz replay: $t: $n inputs ok"
    else
      echo "fuzz replay: $t: FAILED (log: $OUT/replay_$t.log)"
      grep -m 1 '^Running: ' "$OUT/replay_$t.log" | tail -n 1 || true
      tail -n 30 "$OUT/replay_$t.log"
      failed="$failed $t"
    fi
  done
  echo "fuzz replay: $total inputs, failing targets:${failed:- none}"
  [ -z "$failed" ]
  exit
fi

for t in $targets; do
  work=$OUT/work/$t
  art=$OUT/artifacts/$t
  log=$OUT/logs/$t.log
  mkdir -p "$work" "$art" "$(dirname "$log")" "spec/fuzz/crashes/$t"
  echo "fuzz: fuzz_$t for ${FUZZ_SECONDS}s (log: $log)"
  stamp=$OUT/.start_$t
  touch "$stamp"
  rc=0
  # The first directory receives new inputs; the others are only read.
  # shellcheck disable=SC2086
  "$OUT/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len="$FUZZ_MAX_LEN" -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$art/" $FUZZ_ARGS \
      "$work" "spec/fuzz/corpus/$t" "spec/fuzz/crashes/$t" > "$log" 2>&1 || rc=$?
  # The last status line and libFuzzer's final stats.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
  echo "fuzz: fuzz_$t: ${execs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, exit $rc"
  if [ "$rc" -ne 0 ]; then
    failed="$failed $t"
    find "$art" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'leak-*' \
         -o -name 'timeout-*' -o -name 'oom-*' \) > "$OUT/.found_$t"
    while IFS= read -r a; do
      cp "$a" "spec/fuzz/crashes/$t/"
      echo "fuzz: fuzz_$t: saved spec/fuzz/crashes/$t/$(basename "$a") (commit it)"
      show_input "$a"
    done < "$OUT/.found_$t"
    [ -s "$OUT/.found_$t" ] || echo "fuzz: fuzz_$t ended with $rc and left no input; see $log"
    rm -f "$OUT/.found_$t"
    grep -E -A 30 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|fuzz: property' "$log" | head -n 60 || true
  fi
  rm -f "$stamp"
done
echo "fuzz: failing targets:${failed:- none}"
[ -z "$failed" ]
