#!/bin/sh
# Builds the libFuzzer targets with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer, no OpenMP) and runs each for a set time.
#
#   scripts/fuzz.sh [TARGET...]         targets: csv dist sweep (default: all)
#
# Environment:
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_BUILD    build directory (default build-fuzz)
#   FUZZ_JOBS     parallel libFuzzer workers per target (default 1)
#   CC            the clang to use (default clang)
#
# The corpus grows in FUZZ_BUILD/corpus/TARGET, seeded from fuzz/corpus/TARGET.
# A crash leaves its input in FUZZ_BUILD/artifacts/TARGET/; copy it into
# tests/fuzz_regress/TARGET/ (and fix the bug) so the normal test suite runs
# it through the same entry point. Prints libFuzzer's last status line (runs,
# cov: edges, ft: features) per target and exits non-zero if any crashed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${FUZZ_BUILD:-build-fuzz}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
CC=${CC:-clang}
TARGETS=${*:-csv dist sweep}

command -v "$CC" >/dev/null 2>&1 || {
    echo "fuzz.sh: $CC not found (Debian: apt-get install clang libclang-rt-dev)" >&2
    exit 2
}

mkdir -p "$B/obj" || exit 1
FLAGS="-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wno-unknown-pragmas
       -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -I$ROOT/include -I$ROOT/src -I$ROOT/fuzz $(pkg-config --cflags gsl)"
LIBS="$(pkg-config --libs-only-L gsl) -lgsl $(pkg-config --libs openblas lapacke) -lm -ldl"

# The library's sources, as meson.build lists them.
SOURCES=$(sed -n "/^lib_sources = files(/,/^)/p" "$ROOT/meson.build" | grep -o "'src/[^']*\.c'" | tr -d "'")
OBJS=
for s in $SOURCES; do
    o=$B/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')
    if [ ! -f "$o" ] || [ "$ROOT/$s" -nt "$o" ]; then
        # shellcheck disable=SC2086
        $CC $FLAGS -fsanitize=fuzzer-no-link -c "$ROOT/$s" -o "$o" || exit 1
    fi
    OBJS="$OBJS $o"
done

status=0
for t in $TARGETS; do
    extra=
    [ "$t" = sweep ] && extra=$ROOT/src/cli/sweep_config.c
    # shellcheck disable=SC2086
    $CC $FLAGS -fsanitize=fuzzer "$ROOT/fuzz/fuzz_$t.c" $extra $OBJS $LIBS -o "$B/fuzz_$t" || exit 1
    mkdir -p "$B/corpus/$t" "$B/artifacts/$t"
    [ -d "$ROOT/fuzz/corpus/$t" ] && cp -n "$ROOT/fuzz/corpus/$t"/* "$B/corpus/$t"/ 2>/dev/null
    [ -d "$ROOT/tests/fuzz_regress/$t" ] && cp -n "$ROOT/tests/fuzz_regress/$t"/* "$B/corpus/$t"/ 2>/dev/null
    dict=
    [ -f "$ROOT/fuzz/$t.dict" ] && dict=-dict=$ROOT/fuzz/$t.dict
    log=$B/fuzz_$t.log
    echo "fuzz $t: ${SECONDS_EACH}s, log in $log"
    # Leaks are checked by the memcheck target; here they would stop the run
    # on the first small one, so report them without stopping.
    (cd "$B" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 $dict \
        -artifact_prefix="$B/artifacts/$t/" "$B/corpus/$t" >"$log" 2>&1)
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(grep -E 'stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}')
    echo "fuzz $t: exit $rc; executions ${runs:-?}; last: $last"
    if [ $rc -ne 0 ]; then
        status=1
        echo "fuzz $t: FAILED; inputs in $B/artifacts/$t/:" >&2
        ls "$B/artifacts/$t" >&2
        grep -E 'ERROR|SUMMARY|fuzz property' "$log" | head -n 5 >&2
    fi
done
exit $status
