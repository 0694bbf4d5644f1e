#!/bin/sh
# Regenerates the recovery tables of the README: every row is `scoreloss
# sample`, `plant` and `recover` over several seeds, aggregated to the mean
# and standard error of both error forms (METHOD.md section 5), the number of
# seeds where every direction was found, and the tool's own diagnostics.
#
# usage: scripts/recover_tables.sh [reference|exact|census|mixed|all] [BUILD_DIR]
#   reference  the reference table of METHOD.md section 5, 10 seeds per row
#   exact      exact-score recovery at n = 10^6, d = 10, k = 5, random W
#   census     share of 50 random initialisations that find every direction,
#              per constraint and mu (N(0, I), d = k = 5, n = 2 x 10^6), then
#              the mixed-sign census below
#   mixed      the mixed-sign census alone: agmm, d = 10, k = 5, three W,
#              20 starts per loss and constraint
# Markdown on stdout, progress on stderr. Work files go to a temporary
# directory that is removed at the end.
set -eu

WHAT=${1:-all}
BUILD=${2:-build}
S=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/scoreloss
[ -x "$S" ] || { echo "recover_tables.sh: no $S (build first: make demo or meson)" >&2; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# run LABEL SEEDS DIST D N K WSPEC -- RECOVER_OPTIONS...
# One row: for each seed, sample + plant + recover; prints the Markdown row.
run() {
    label=$1 seeds=$2 dist=$3 d=$4 n=$5 k=$6 w=$7
    shift 8
    : >"$W/rows"
    for seed in $(seq 1 "$seeds"); do
        printf '%s: seed %s\n' "$label" "$seed" >&2
        "$S" sample --dist "$dist" --d "$d" --n "$n" --seed "$seed" -o "$W/x.csv"
        "$S" plant --input "$W/x.csv" --k "$k" --w "$w" --seed "$seed" -o "$W/data.csv" \
            --truth "$W/truth.csv"
        start=$(date +%s.%N)
        "$S" recover --input "$W/data.csv" --k "$k" --truth "$W/truth.csv" --seed "$seed" \
            -o "$W/w.csv" "$@" >"$W/out" 2>"$W/err" || {
            echo "recover_tables.sh: $label seed $seed failed: $(tail -1 "$W/err")" >&2
            exit 1
        }
        end=$(date +%s.%N)
        # err_max distinct err_min warned seconds
        awk -v k="$k" -v t="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" -v warned="$(grep -c warning "$W/err" || true)" '
            /^error:/ { emax = $2; dist = $5; emin = $NF }
            END { print emax, dist, emin, warned, t }' "$W/out" >>"$W/rows"
    done
    awk -v label="$label" -v k="$k" '
        { n++; s += $1; ss += $1 * $1; m += $3; all += ($2 == k); dd += $2; w += ($4 > 0); t += $5 }
        END {
            mean = s / n; se = n > 1 ? sqrt((ss - n * mean * mean) / (n - 1) / n) : 0
            printf "| %s | %.3g +- %.2g | %.3g | %d of %d | %.1f of %d | %d of %d | %.1f |\n",
                label, mean, se, m / n, all, n, dd / n, k, w, n, t / n
        }' "$W/rows"
}

header() {
    echo "| row | error, max form (mean +- s.e.) | min form (mean) | seeds with every direction | distinct directions (mean) | seeds warned | seconds per run |"
    echo "|---|---|---|---|---|---|---|"
}

if [ "$WHAT" = reference ] || [ "$WHAT" = all ]; then
    echo "### The reference table, re-run (10 seeds per row)"
    echo
    header
    # d = 2, n = 1024, W = I, ReLU, a = 1, no noise.
    run "gauss, llsfe" 10 gauss 2 1024 2 identity -- --score llsfe
    run "gauss, llsfe, reference settings (mu 5, sphere, lr 1e-3)" 10 gauss 2 1024 2 identity -- \
        --score llsfe --mu 5 --constraint sphere --lr 1e-3
    run "gauss, hermite" 10 gauss 2 1024 2 identity -- --score hermite
    run "gauss, l2" 10 gauss 2 1024 2 identity -- --loss l2
    run "gmm2, llsfe" 10 gmm2 2 1024 2 identity -- --score llsfe
    run "gmm2, hermite" 10 gmm2 2 1024 2 identity -- --score hermite
    run "gmm2, l2" 10 gmm2 2 1024 2 identity -- --loss l2
    # The symmetric exponential, d = 50, n = 8192, W = I (k = 50): the
    # reference's "exact" S_4 = g^(x)4 is the locally quadratic S_4 of the
    # exact g (H = 0 away from the kinks). One start of 3000 steps each
    # (k = 50 costs 0.13 GFLOP per minibatch step).
    run "laplace d=50, exact g^(x)4" 10 laplace 50 8192 50 identity -- --score exact \
        --dist laplace --route quadratic --mode minibatch --restarts 1 --epochs 105
    run "laplace d=50, hermite" 10 laplace 50 8192 50 identity -- --score hermite \
        --restarts 1 --epochs 105
    run "laplace d=50, l2" 10 laplace 50 8192 50 identity -- --loss l2 --restarts 1
    echo
fi

if [ "$WHAT" = exact ] || [ "$WHAT" = all ]; then
    echo "### Exact scores at n = 10^6, d = 10, k = 5, W random (3 seeds per row)"
    echo
    header
    for dist in logistic student agmm; do
        run "$dist, exact (full S_4)" 3 $dist 10 1000000 5 random -- --score exact --dist $dist
        run "$dist, exact (full S_4), refinement off" 3 $dist 10 1000000 5 random -- \
            --score exact --dist $dist --refine none
        run "$dist, exact (full S_4), cubic control variate" 3 $dist 10 1000000 5 random -- \
            --score exact --dist $dist --detrend 3 --refine none
        run "$dist, exact (full S_4), raw labels" 3 $dist 10 1000000 5 random -- --score exact \
            --dist $dist --detrend 0 --refine none
        [ $dist = agmm ] && run "$dist, exact, projected route" 3 $dist 10 1000000 5 random -- \
            --score exact --dist $dist --route projected
        [ $dist = agmm ] && run "$dist, exact, sign-free (before the refinement)" 3 $dist 10 \
            1000000 5 random -- --score exact --dist $dist --loss signfree --refine none
        run "$dist, exact g and H only (quadratic S_4)" 3 $dist 10 1000000 5 random -- \
            --score exact --dist $dist --route quadratic --mode tensor
        run "$dist, hermite" 3 $dist 10 1000000 5 random -- --score hermite --mode tensor
        run "$dist, l2" 3 $dist 10 1000000 5 random -- --loss l2 --restarts 1
    done
    echo
    echo "### Whitening: N(0, I), d = 10, k = 5, W random with condition number 10, n = 10^6 (10 seeds per row)"
    echo
    header
    run "gauss, exact (the default: control variates and refinement)" 10 gauss 10 1000000 5 \
        random:10 -- --score exact --dist gauss
    run "gauss, exact, control variates, no refinement" 10 gauss 10 1000000 5 random:10 -- \
        --score exact --dist gauss --refine none
    run "gauss, exact, cubic control variate" 10 gauss 10 1000000 5 random:10 -- \
        --score exact --dist gauss --detrend 3 --refine none
    run "gauss, exact, raw labels" 10 gauss 10 1000000 5 random:10 -- --score exact --dist gauss \
        --detrend 0 --refine none
    run "gauss, l2" 10 gauss 10 1000000 5 random:10 -- --loss l2 --restarts 1
    echo
fi

if [ "$WHAT" = census ] || [ "$WHAT" = all ]; then
    echo "### Census: N(0, I), d = k = 5, W orthonormal, n = 2 x 10^6, Hermite (= exact) scores, 50 random starts"
    echo
    echo "| constraint | mu | starts that find every direction (err < 0.01) | worst start's error |"
    echo "|---|---|---|---|"
    "$S" sample --dist gauss --d 5 --n 2000000 --seed 2 -o "$W/x.csv"
    "$S" plant --input "$W/x.csv" --k 5 --seed 2 -o "$W/data.csv" --truth "$W/truth.csv"
    for c in orthonormal sphere; do
        for mu in 0.25 0.5 0.9 1.5 5; do
            printf 'census: %s mu %s\n' $c $mu >&2
            "$S" recover --input "$W/data.csv" --k 5 --score hermite --mode tensor --holdout 0 \
                --truth "$W/truth.csv" --restarts 50 --constraint $c --mu $mu -o "$W/w.csv" \
                2>/dev/null |
                sed -n 's/.*their errors: //p' |
                awk -v c=$c -v mu=$mu '{ ok = 0; worst = 0
                    for (i = 1; i <= NF; i++) { ok += ($i < 0.01); if ($i > worst) worst = $i }
                    printf "| %s | %s | %d of %d | %.3g |\n", c, mu, ok, NF, worst }'
        done
    done
    echo
fi
if [ "$WHAT" = census ] || [ "$WHAT" = mixed ] || [ "$WHAT" = all ]; then
    echo "### Census with mixed signs: agmm, d = 10, k = 5, W random, n = 10^6, exact scores (full S_4), 20 random starts"
    echo
    echo "| W seed | signal along the true whitened directions | loss, constraint | starts that find every direction (err < 0.05) | best start's error |"
    echo "|---|---|---|---|---|"
    for seed in 1 2 3; do
        "$S" sample --dist agmm --d 10 --n 1000000 --seed $seed -o "$W/x.csv"
        "$S" plant --input "$W/x.csv" --k 5 --w random --seed $seed -o "$W/data.csv" \
            --truth "$W/truth.csv"
        for lc in "landscape orthonormal" "landscape sphere" "signfree orthonormal"; do
            set -- $lc
            printf 'census agmm: seed %s %s %s\n' $seed $1 $2 >&2
            "$S" recover --input "$W/data.csv" --k 5 --score exact --dist agmm --loss $1 \
                --constraint $2 --truth "$W/truth.csv" --restarts 20 -o "$W/w.csv" \
                2>/dev/null >"$W/out"
            sig=$(sed -n 's/^T(u,u,u,u) along the true whitened directions: //p' "$W/out")
            sed -n 's/.*their errors: //p' "$W/out" |
                awk -v s=$seed -v l="$1, $2" -v sig="$sig" '{ ok = 0; best = 1
                    for (i = 1; i <= NF; i++) { ok += ($i < 0.05); if ($i < best) best = $i }
                    printf "| %s | %s | %s | %d of %d | %.3g |\n", s, sig, l, ok, NF, best }'
        done
    done
    echo
fi
