#!/bin/sh
# Regenerates the accuracy table of the estimated projected fourth moment
# (s4.h; METHOD.md section 4b): for each input and n, the relative Frobenius
# error of the whitened T from each S_4 estimator against the exact T of the
# same sample and labels, split into bias (mean over seeds) and noise
# (spread over seeds), beside the locally quadratic T from the exact g and H
# (the best the original method can do), with raw labels (against the exact
# T with raw labels) and with the labels detrended by their cubic fit in z
# (against the exact T with detrended labels, the reference of the
# estimators, which detrend: see s4_project.c). d = 10, k = 5, W random (seed 3: its M2 has the
# k-th eigenvalue at 0.05 of the first or more for all four inputs), ReLU,
# a = 1, no noise; z = U0'x with U0 the row span of W, the whitening from a
# separate 2 x 10^5-row exact-score M2 (bench/bench_s4.c).
#
# usage: [THIN=t|gauss|zero] scripts/s4_tables.sh [quick|n4|full|ridges] [BUILD_DIR]
#   quick  n = 10^4 (3 seeds, all estimators) and 10^5 (2 seeds, kde and
#          quadratic, 10^4 reference samples as recover uses)
#   n4     n = 10^4 only
#   full   n = 10^4, 10^5 and 10^6, 3 seeds, all estimators (hours)
#   ridges kde with the refit passes' ridge control variates at the true
#          directions (smoothing 0.2 and 0.05), n = 10^5 and 10^6, 3 seeds,
#          10^4 reference samples; then, for logistic at 10^5, the ridges
#          turned 1 and 3 degrees off (about 30 minutes)
# THIN: the estimators' rule for thin neighbourhoods (bench_s4 --thin;
# default the library's, t). Markdown on stdout, progress on stderr.
set -eu

WHAT=${1:-quick}
BUILD=${2:-build}
B=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bench/bench_s4
[ -x "$B" ] || { echo "s4_tables.sh: no $B (build first)" >&2; exit 2; }

echo "| input | n | T from | h | bias | noise | M2 error (whitened) | error per seed | neighbours within reach | effective | regularised | seconds per seed |"
echo "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
row() {
    echo "s4_tables: $*" >&2
    "$B" --wseed 3 ${THIN:+--thin "$THIN"} "$@" 2>/dev/null
}
for dist in gauss logistic student agmm; do
    case $WHAT in
    quick)
        row --dist "$dist" --n 10000 --seeds 1,2,3 --est kde,cumulant,quadratic
        row --dist "$dist" --n 100000 --seeds 1,2 --est kde,quadratic --ref 10000
        ;;
    n4)
        row --dist "$dist" --n 10000 --seeds 1,2,3 --est kde,cumulant,quadratic
        ;;
    ridges)
        for n in 100000 1000000; do
            for s in 0.2 0.05; do
                row --dist "$dist" --n "$n" --seeds 1,2,3 --est kde --ref 10000 --ridges "$s"
            done
        done
        ;;
    full)
        for n in 10000 100000 1000000; do
            row --dist "$dist" --n "$n" --seeds 1,2,3 --est kde,cumulant,quadratic --ref 10000
        done
        ;;
    *)
        echo "s4_tables.sh: unknown table '$WHAT' (quick, n4, full or ridges)" >&2
        exit 2
        ;;
    esac
done
if [ "$WHAT" = ridges ]; then
    for t in 1 3; do
        row --dist logistic --n 100000 --seeds 1,2,3 --est kde --ref 10000 --ridges 0.05 --tilt "$t"
    done
fi
