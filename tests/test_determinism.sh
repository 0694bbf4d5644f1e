#!/bin/sh
# Determinism: the same seed gives bitwise identical outputs, run after run
# and with 1 or 2 threads (OMP_NUM_THREADS), for sample, plant, score (llsfe
# and kde, with the automatic bandwidth and with knn:K) and recover.
#
#   test_determinism.sh PATH/TO/scoreloss
#
# Outputs are compared byte for byte with cmp, except the lines that record
# wall time (recover's "# seconds:" comment and its trace's seconds column),
# which are taken out first. Prints one line per failed case, then
# "determinism: N passed, N failed".

SL=${1:?usage: test_determinism.sh PATH/TO/scoreloss}
case $SL in /*) ;; *) SL=$(pwd)/$SL ;; esac

T=$(mktemp -d "${TMPDIR:-/tmp}/test_determinism.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cd "$T" || exit 1

passed=0 failed=0
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# run TAG THREADS CMD...: runs scoreloss with OMP_NUM_THREADS=THREADS in
# directory TAG (outputs land there), stopping the test if it fails.
run() {
    tag=$1 threads=$2
    shift 2
    mkdir -p "$tag"
    if ! (cd "$tag" && OMP_NUM_THREADS=$threads "$SL" "$@" >stdout.txt 2>stderr.txt); then
        fail "[$tag, $threads threads] scoreloss $* failed: $(head -c 300 "$tag/stderr.txt")"
        return 1
    fi
}

# Wall time taken out: "# seconds:" comment lines and a "seconds" column.
timeless() {
    awk -F, '
        /^# seconds:/ { next }
        /^#/ { print; next }
        !header { header = 1; for (i = 1; i <= NF; i++) if ($i == "seconds") drop = i }
        { line = ""; for (i = 1; i <= NF; i++) if (i != drop) line = line (line == "" ? "" : ",") $i; print line }
    ' "$1"
}

# same FILE: FILE identical (timing aside) in the runs a (1 thread), b (1
# thread again) and c (2 threads).
same() {
    f=$1
    timeless "a/$f" >a.cmp && timeless "b/$f" >b.cmp && timeless "c/$f" >c.cmp
    if ! cmp -s a.cmp b.cmp; then
        fail "$f differs between two runs with 1 thread: $(cmp a.cmp b.cmp 2>&1 | head -n 1)"
    elif ! cmp -s a.cmp c.cmp; then
        fail "$f differs between 1 and 2 threads: $(cmp a.cmp c.cmp 2>&1 | head -n 1)"
    else
        passed=$((passed + 1))
    fi
}

# Inputs shared by every run: copied into each run's directory.
mkdir -p in
(cd in && OMP_NUM_THREADS=1 "$SL" sample --dist logistic --d 4 --n 1500 --seed 9 -o x.csv &&
    OMP_NUM_THREADS=1 "$SL" plant --input x.csv --k 2 --seed 9 --noise 0.1 -o data.csv \
        --truth truth.csv) || {
    echo "FAIL: could not make the inputs"
    echo "determinism: 0 passed, 1 failed"
    exit 1
}
for tag in a b c; do
    mkdir -p $tag
    cp in/*.csv $tag/
done

for tag in a b c; do
    case $tag in c) th=2 ;; *) th=1 ;; esac
    # sample: more rows than one random block (4096), so blocks run in parallel.
    run $tag $th sample --dist gmm2 --d 3 --n 10000 --seed 4 -o sample.csv
    run $tag $th sample --input x.csv --n 9000 --seed 5 -o resample.csv
    run $tag $th plant --input x.csv --k 3 --w random:5 --a positive --noise 0.2 --seed 6 \
        -o plant.csv --truth plant_truth.csv
    # score: the automatic bandwidth (held-out split, grid), a fixed one on
    # all pairs, and knn:K through the k-d tree, at the samples and at queries.
    run $tag $th score --method llsfe --input x.csv --seed 2 -o llsfe_auto.csv
    run $tag $th score --method llsfe --input x.csv --bandwidth 0.6 --strategy allpairs -o llsfe_fixed.csv
    run $tag $th score --method llsfe --input x.csv --bandwidth knn:40 --at resample.csv -o llsfe_knn.csv
    run $tag $th score --method kde --input x.csv --seed 3 -o kde_auto.csv
    run $tag $th score --method kde --input x.csv --bandwidth 0.5 --strategy neighbours -o kde_fixed.csv
    # recover: estimated scores through minibatch SGD, and exact scores in
    # tensor mode; small budgets keep it short.
    run $tag $th recover --input data.csv --k 2 --score llsfe --bandwidth 0.7 --epochs 3 \
        --restarts 2 --seed 8 --truth truth.csv -o recover_llsfe.csv --trace trace_llsfe.csv
    run $tag $th recover --input data.csv --k 2 --score exact --dist logistic --epochs 2 \
        --restarts 2 --seed 8 -o recover_exact.csv --trace trace_exact.csv
done

for f in sample.csv resample.csv plant.csv plant_truth.csv llsfe_auto.csv llsfe_fixed.csv \
    llsfe_knn.csv kde_auto.csv kde_fixed.csv recover_llsfe.csv trace_llsfe.csv \
    recover_exact.csv trace_exact.csv; do
    if [ -f "a/$f" ] && [ -f "b/$f" ] && [ -f "c/$f" ]; then
        same "$f"
    else
        fail "$f: missing in a run"
    fi
done

echo "determinism: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
