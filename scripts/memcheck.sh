#!/bin/sh
# Runs the command-line tests under valgrind's memcheck on a debug build
# without sanitizers, and fails on any memory error or definite/indirect leak.
#
#   scripts/memcheck.sh [SCRIPT...]     default: tests/test_cli.sh tests/test_badinput.sh
#
# Environment:
#   MEMCHECK_BUILD   build directory (default build-memcheck; set up if missing)
#   MEMCHECK_EVERY   valgrind on every Nth scoreloss process, counted over
#                    the whole run, the others natively (default 2; 1 = all).
#                    Under valgrind each process takes seconds (OpenBLAS and
#                    the sanitizer-free debug build), and test_cli.sh alone
#                    starts some 300
#   MEMCHECK_SUBSET  besides, every process whose command line matches this
#                    extended regular expression runs under valgrind
#   MEMCHECK_MAX_N   processes with a larger --n, or reading a file larger
#                    than MEMCHECK_MAX_N * 40 bytes, run natively (default
#                    2000; 0 = no such limit): the estimators are O(n^2) at
#                    -O0 under valgrind's 20-50x slowdown
#   OMP_NUM_THREADS  default 1 here (valgrind runs threads one at a time)
#
# Every scoreloss process writes its own log to BUILD/memcheck/vg.PID.log; the
# summary counts the processes, the logs with errors, and prints the first
# offending log. The test scripts' own verdicts still count: a case that
# fails only under valgrind (its exit status becomes 99 on an error) shows as
# a failed case too.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${MEMCHECK_BUILD:-build-memcheck}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
SCRIPTS=${*:-tests/test_cli.sh tests/test_badinput.sh}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS=1
# Valgrind's CPU has no AVX-512: OpenBLAS would pick other kernels under it
# than natively, and the tests that compare two runs' outputs bit for bit
# would see last-digit differences between a process under valgrind and one
# without. The same kernels everywhere.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}

command -v valgrind >/dev/null 2>&1 || {
    echo "memcheck.sh: valgrind not found (Debian: apt-get install valgrind)" >&2
    exit 2
}
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" "$ROOT" --buildtype=debug -Dtests=false >/dev/null || exit 1
fi
ninja -C "$B" -j2 scoreloss plugin_gumbel.so >/dev/null || exit 1

LOGS=$B/memcheck
rm -rf "$LOGS"
mkdir -p "$LOGS" || exit 1
WRAP=$LOGS/scoreloss
cat >"$WRAP" <<WRAPPER
#!/bin/sh
# scoreloss under memcheck (written by scripts/memcheck.sh).
count=\$(( \$(cat "$LOGS/count" 2>/dev/null || echo 0) + 1 ))
echo "\$count" >"$LOGS/count"
max_n=${MEMCHECK_MAX_N:-2000}
big=0
if [ "\$max_n" -gt 0 ]; then
    prev=
    for a in "\$@"; do
        if [ "\$prev" = --n ] && [ "\$(printf '%s' "\$a" | awk '{ print (\$1 + 0 > '"\$max_n"') }')" = 1 ]; then big=1; fi
        if [ -f "\$a" ] && [ "\$(wc -c <"\$a")" -gt \$((max_n * 40)) ]; then big=1; fi
        prev=\$a
    done
fi
if [ "\$big" = 1 ] ||
    { [ \$((count % ${MEMCHECK_EVERY:-2})) -ne 0 ] &&
        ! { [ -n "\${MEMCHECK_SUBSET:-}" ] && printf '%s\n' "\$*" | grep -Eq -- "\$MEMCHECK_SUBSET"; }; }; then
    exec "$B/scoreloss" "\$@"
fi
exec valgrind --quiet --error-exitcode=99 --leak-check=full \\
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \\
    --suppressions="$ROOT/scripts/memcheck.supp" \\
    --log-file="$LOGS/vg.%p.log" "$B/scoreloss" "\$@"
WRAPPER
chmod +x "$WRAP"
# The library beside the wrapper, where the bad-input matrix looks for a
# shared object without the plug-in symbol.
ln -sf "$B/libscoreloss.so" "$LOGS/libscoreloss.so"

status=0
for s in $SCRIPTS; do
    case $s in /*) ;; *) s=$ROOT/$s ;; esac
    echo "memcheck: $(basename "$s")"
    sh "$s" "$WRAP" "$B/plugin_gumbel.so" || status=1
done

runs=$(ls "$LOGS"/vg.*.log 2>/dev/null | wc -l)
bad=
for f in "$LOGS"/vg.*.log; do
    [ -s "$f" ] && bad="$bad $f"
done
nbad=$(echo $bad | wc -w)
echo "memcheck: $runs of $(cat "$LOGS/count") processes under valgrind, $nbad with errors or leaks"
if [ "$nbad" -ne 0 ]; then
    status=1
    first=$(echo $bad | awk '{ print $1 }')
    echo "memcheck: first report ($first):"
    head -n 60 "$first"
fi
exit $status
