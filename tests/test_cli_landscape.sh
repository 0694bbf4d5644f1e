#!/bin/sh
# End-to-end tests of `scoreloss landscape`, `census` and `plot` on small
# files, good and bad.
#
#   test_cli_landscape.sh PATH/TO/scoreloss
#
# Works in a fresh temporary directory (removed on exit). Prints one line per
# failed case, then one summary line "cli_landscape: N passed, N failed", and
# exits non-zero if any case failed. PNG cases run only when gnuplot is on
# PATH (they check the PNG signature); without it, the --png options must
# warn in one line and still write the CSV.

SL=${1:?usage: test_cli_landscape.sh PATH/TO/scoreloss}
case $SL in /*) ;; *) SL=$(pwd)/$SL ;; esac
T=$(mktemp -d "${TMPDIR:-/tmp}/test_cli_landscape.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cd "$T" || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
sl() { "$SL" "$@"; }

# expect_ok CMD...: exit 0, nothing on stderr.
expect_ok() {
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    if [ $rc -ne 0 ]; then
        fail "$* -> exit $rc: $(head -c 300 "$T/stderr")"
    elif [ -s "$T/stderr" ]; then
        fail "$* -> stderr not empty: $(head -c 300 "$T/stderr")"
    else
        pass
    fi
}

# expect_fail STATUS PATTERN OUTFILE CMD...: exit STATUS, one line on stderr
# starting "scoreloss" and matching PATTERN, OUTFILE not created.
expect_fail() {
    status=$1 pattern=$2 out=$3
    shift 3
    rm -f "$out"
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    why=
    if [ $rc -ne "$status" ]; then
        why="exit $rc, expected $status"
    elif [ "$(wc -l <"$T/stderr")" -ne 1 ]; then
        why="stderr has $(wc -l <"$T/stderr") lines"
    elif ! grep -Eq "^scoreloss" "$T/stderr"; then
        why="stderr does not start with scoreloss"
    elif ! grep -Eq -- "$pattern" "$T/stderr"; then
        why="stderr does not match /$pattern/"
    elif [ -e "$out" ]; then
        why="created $out"
    elif ls "$out".tmp.* >/dev/null 2>&1; then
        why="left a temporary file"
    fi
    if [ -n "$why" ]; then fail "$* -> $why: $(head -c 300 "$T/stderr")"; else pass; fi
}

check() {
    name=$1
    shift
    if "$@" >/dev/null 2>&1; then pass; else fail "$name"; fi
}

# The PNG signature: 89 50 4E 47 0D 0A 1A 0A.
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# rows FILE: data rows (comments and header dropped)
rows() { grep -v '^#' "$1" | tail -n +2 | wc -l; }
header() { grep -v '^#' "$1" | head -n 1; }

have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1

# ---- data: gauss d = k = 2 and d = k = 3, planted relu networks ----------------------
sl sample --dist gauss --d 2 --n 3000 --seed 5 -o x2.csv &&
    sl plant --input x2.csv --k 2 --seed 5 -o d2.csv --truth t2.csv &&
    sl sample --dist gauss --d 3 --n 20000 --seed 6 -o x3.csv &&
    sl plant --input x3.csv --k 3 --seed 6 -o d3.csv --truth t3.csv || {
    echo "FAIL: cannot make the data"
    exit 1
}
# A spurious point for through: planes: the truth with rows 1 and 2 equal.
grep -v '^#' t3.csv | sed -n '1p;2p;2p;4p' >second3.csv

# ---- landscape ------------------------------------------------------------------------
expect_ok sl landscape --input d2.csv --k 2 --score exact --dist gauss --truth t2.csv \
    --plane angles --grid 31 -o a.csv
check "angles: header" test "$(header a.csv)" = "u,v,loss,grad_norm"
check "angles: 31^2 rows" test "$(rows a.csv)" -eq 961
check "angles: comment records the parameters" grep -q '^# scoreloss landscape .*--grid 31' a.csv
check "angles: truth marked twice" test "$(grep -c '^# mark truth' a.csv)" -eq 2
# The grid minimum lies near a marked truth point: on the sphere the sample
# T's noise moves it (measured 0.22 here at n = 3000; 0.07 to 0.28 over
# three seeds at n = 20000), against pi / 2 between distinct minima.
check "angles: grid minimum at the truth" awk -F, '
    /^# mark truth/ { split($0, w, " "); tu[++nt] = w[4]; tv[nt] = w[5]; next }
    /^#/ || /^u/ { next }
    NR > 0 && (best == "" || $3 < best) { best = $3; bu = $1; bv = $2 }
    END { for (i = 1; i <= nt; i++) if ((bu - tu[i])^2 + (bv - tv[i])^2 < 0.5^2) exit 0; exit 1 }' a.csv

expect_ok sl landscape --input d2.csv --k 2 --score exact --dist gauss --truth t2.csv \
    --plane angles --grid 21 --loss landscape,l2 --subsample 500 -o two.csv
check "two losses: one file each" test -f two.landscape.csv -a -f two.l2.csv -a ! -e two.csv
check "two losses: l2 rows" test "$(rows two.l2.csv)" -eq 441

expect_ok sl landscape --input d3.csv --k 3 --score exact --dist gauss --truth t3.csv \
    --plane random --grid 11 -o r.csv
check "random: 121 rows" test "$(rows r.csv)" -eq 121
check "random: centre marked" grep -q '^# mark truth 0 0' r.csv
# The centre (u = v = 0) has the smallest loss on the plane through the truth
# with exact Gaussian scores at n = 20000 (measured on seeds 5, 6, 7; at
# n = 3000 the noise of T moved the minimum off the centre on two of three).
check "random: centre is the grid minimum" awk -F, '
    /^#/ || /^u/ { next }
    best == "" || $3 < best { best = $3; bu = $1; bv = $2 }
    END { exit !(bu == 0 && bv == 0) }' r.csv

expect_ok sl landscape --input d3.csv --k 3 --truth t3.csv --loss l2 --plane through:second3.csv \
    --grid 11 --span 1 -o th.csv
check "through: second point marked" grep -q '^# mark second 1 0' th.csv
check "through: l2 is zero at the truth" awk -F, '/^#/ || /^u/ { next } $1 == 0 && $2 == 0 { exit !($3 < 1e-20) }' th.csv

# Bad options and files: one line, no output.
expect_fail 2 "angles needs --k 2" bad.csv sl landscape --input d3.csv --k 3 --plane angles -o bad.csv
expect_fail 2 "unknown loss" bad.csv sl landscape --input d2.csv --k 2 --loss foo -o bad.csv
expect_fail 2 "listed twice" bad.csv sl landscape --input d2.csv --k 2 --loss l2,l2 -o bad.csv
expect_fail 2 "unknown plane" bad.csv sl landscape --input d2.csv --k 2 --plane diagonal -o bad.csv
expect_fail 2 "--grid" bad.csv sl landscape --input d2.csv --k 2 --grid 2 -o bad.csv
expect_fail 2 "missing option --dist" bad.csv sl landscape --input d2.csv --k 2 --score exact -o bad.csv
expect_fail 1 "missing.csv" bad.csv sl landscape --input missing.csv --k 2 -o bad.csv
expect_fail 1 "nothere.csv" bad.csv sl landscape --input d3.csv --k 3 --loss l2 \
    --plane through:nothere.csv -o bad.csv
expect_fail 1 "units" bad.csv sl landscape --input d3.csv --k 3 --truth t2.csv --loss l2 -o bad.csv
expect_fail 2 "exceeds d" bad.csv sl landscape --input d2.csv --k 3 --plane random -o bad.csv
expect_fail 1 "nodir" bad.csv sl landscape --input d2.csv --k 2 --score exact --dist gauss --grid 5 \
    -o bad.csv --png nodir/bad.png
expect_fail 2 "tangent space of dimension 1" bad.csv sl landscape --input d2.csv --k 2 --score exact --dist gauss \
    --truth t2.csv --plane random --constraint orthonormal -o bad.csv

# The moments' options, as recover takes them: the default S_4 estimator
# named is the same grid, another estimator another T; refused where they
# would be ignored.
body() { grep -v '^#' "$1"; }
for s4 in default kde quadratic; do
    set -- --s4 "$s4"
    [ "$s4" = default ] && set --
    expect_ok sl landscape --input d2.csv --k 2 --score kde --truth t2.csv --plane angles --grid 11 \
        "$@" -o "m-$s4.csv"
done
check "landscape --s4 kde: the default's grid" test "$(body m-kde.csv)" = "$(body m-default.csv)"
check "landscape --s4 quadratic: another T" test "$(body m-quadratic.csv)" != "$(body m-default.csv)"
check "landscape --s4 quadratic: recorded" grep -q '^# scoreloss landscape .*--s4 quadratic' m-quadratic.csv
expect_fail 2 "option --s4: the l2 loss on a plane uses no scores" bad.csv sl landscape --input d3.csv \
    --k 3 --loss l2 --plane random --s4 kde -o bad.csv
expect_fail 2 "option --u-rows: applies to estimated scores on the projected route only" bad.csv \
    sl landscape --input d2.csv --k 2 --score exact --dist gauss --u-rows 100 -o bad.csv
expect_fail 2 "option --shrink: applies to llsfe scores only" bad.csv sl landscape --input d2.csv \
    --k 2 --score kde --shrink 1 -o bad.csv
expect_fail 2 "option --assume: unknown assumption 'gauss'" bad.csv sl landscape --input d2.csv \
    --k 2 --assume gauss -o bad.csv

# ---- census ----------------------------------------------------------------------------
expect_ok sl census --input d2.csv --k 2 --score exact --dist gauss --truth t2.csv --restarts 8 \
    -o c.csv
check "census: header" test "$(header c.csv)" = \
    "loss,score,cluster,count,fraction,objective,objective_spread,err_max,distinct,global,seconds"
check "census: table printed" grep -q "at the global minimum" "$T/stdout"
check "census: all 8 restarts counted" awk -F, '/^#/ || /^loss/ { next } { s += $4 } END { exit !(s == 8) }' c.csv
expect_ok sl census --input d2.csv --k 2 --loss landscape,l2 --score exact,hermite --dist gauss \
    --restarts 3 --epochs 2 -o c2.csv
# landscape x (exact, hermite) and l2 once (score none).
check "census: three runs" test "$(grep -v '^#' c2.csv | tail -n +2 | cut -d, -f1,2 | sort -u | wc -l)" -eq 3
check "census: l2 has score none" grep -q '^l2,none,' c2.csv
expect_ok sl census --input d2.csv --k 2 --loss l2 --restarts 2 --epochs 2 -o c3.csv --minima m
check "census --minima: a network per cluster" test -f m-l2-none-1.csv
expect_ok sl landscape --input d2.csv --k 2 --loss l2 --truth t2.csv --plane through:m-l2-none-1.csv \
    --grid 5 --subsample 200 -o thm.csv
check "through a census minimum: 25 rows" test "$(rows thm.csv)" -eq 25
expect_fail 1 "nodir" c4.csv sl census --input d2.csv --k 2 --loss l2 --restarts 2 --epochs 1 \
    -o c4.csv --minima nodir/m
expect_fail 2 "unknown name" bad.csv sl census --input d2.csv --k 2 --loss nope -o bad.csv
expect_ok sl census --input d2.csv --k 2 --score kde --s4 quadratic --restarts 2 --epochs 2 -o c5.csv
check "census --s4: recorded" grep -q '^# scoreloss census .*--s4 quadratic' c5.csv
expect_fail 2 "option --s4: applies to estimated scores on the projected route only" bad.csv \
    sl census --input d2.csv --k 2 --score kde,exact --dist gauss --s4 quadratic -o bad.csv
expect_fail 2 "option --detrend: the l2 loss uses no scores or moments" bad.csv \
    sl census --input d2.csv --k 2 --loss l2 --detrend 2 -o bad.csv
expect_fail 2 "same-tol" bad.csv sl census --input d2.csv --k 2 --same-tol 3 -o bad.csv
expect_fail 2 "--dist" bad.csv sl census --input d2.csv --k 2 --dist gauss -o bad.csv
expect_fail 1 "missing.csv" bad.csv sl census --input missing.csv --k 2 -o bad.csv
expect_fail 1 "nodir" bad.csv sl census --input d2.csv --k 2 --loss l2 --restarts 1 --epochs 1 \
    -o bad.csv --png nodir/c.png

# ---- plot -------------------------------------------------------------------------------
cat >trace.csv <<'EOT'
# scoreloss recover --loss landscape --score exact
restart,step,epoch,loss,grad_norm,error,seconds,full
0,0,1,1.0,1,0.5,0.1,1
0,100,2,0.5,1,0.1,0.2,1
1,0,1,2.0,1,0.6,0.1,1
1,100,2,0.8,1,0.3,0.2,1
EOT
cat >sweep.csv <<'EOT'
dist,d,k,n,loss,score,seed,err_max
gauss,3,3,1000,landscape,exact,1,0.2
gauss,3,3,1000,landscape,exact,2,0.3
gauss,3,3,10000,landscape,exact,1,0.05
gauss,3,3,10000,landscape,exact,2,0.07
gauss,3,3,1000,l2,none,1,0.1
gauss,3,3,10000,l2,none,1,0.02
EOT
# Lines per setting of the parameters: noise and route tell the llsfe lines
# apart, s4 follows from route and is left out of the labels, l2 has one
# line per noise level, and --where picks runs.
cat >sweep2.csv <<'EOT'
dist,d,k,n,noise,loss,score,route,s4,refit,seed,err_max
gauss,3,3,1000,0,landscape,llsfe,auto,kde,0,1,0.2
gauss,3,3,1000,0,landscape,llsfe,auto,kde,5,1,0.02
gauss,3,3,1000,0,landscape,llsfe,quadratic,-,-,1,0.5
gauss,3,3,1000,0.1,landscape,llsfe,auto,kde,0,1,0.3
gauss,3,3,1000,0,l2,-,-,-,-,1,0.001
gauss,3,3,1000,0.1,l2,-,-,-,-,1,0.01
logistic,3,3,1000,0,l2,-,-,-,-,1,0.002
EOT
# A stand-in for gnuplot that keeps the variables it was given.
cat >fakegp.sh <<'EOT'
#!/bin/sh
printf '%s\n' "$2" >gpvars.txt
out=$(sed -n "s/.*outfile='\([^']*\)'.*/\1/p" gpvars.txt)
printf 'png' >"$out"
EOT
chmod +x fakegp.sh
expect_ok env SL_GNUPLOT="$T/fakegp.sh" "$SL" plot sweep sweep2.csv --where 'dist=gauss' -o s2.png
check "plot sweep: 6 lines" grep -q 'ngroups=6;' gpvars.txt
check "plot sweep: labels" grep -q "titles='\"landscape/llsfe noise=0 route=auto refit=0\" \"landscape/llsfe noise=0 route=auto refit=5\" \"landscape/llsfe noise=0 route=quadratic\" \"landscape/llsfe noise=0.1 route=auto refit=0\" \"l2/- noise=0\" \"l2/- noise=0.1\"'" gpvars.txt
expect_ok env SL_GNUPLOT="$T/fakegp.sh" "$SL" plot sweep sweep2.csv --where 'loss=l2 noise=0' -o s2.png
check "plot sweep --where: one line per dist" grep -q "ngroups=2; titles='\"l2/- gauss\" \"l2/- logistic\"'" gpvars.txt
expect_fail 2 "no column 'foo'" s3.png sl plot sweep sweep2.csv --where 'foo=1' -o s3.png
expect_fail 2 "expected KEY=VALUE" s3.png sl plot sweep sweep2.csv --where 'dist' -o s3.png
expect_fail 1 "no runs match" s3.png sl plot sweep sweep2.csv --where 'dist=student' -o s3.png
expect_fail 2 "sweep pictures only" s3.png sl plot census sweep2.csv --where 'dist=gauss' -o s3.png
expect_fail 2 "unknown KIND" bad.png sl plot pie a.csv -o bad.png
expect_fail 2 "missing the input" bad.png sl plot landscape -o bad.png
expect_fail 2 "one input" bad.png sl plot census c.csv c2.csv -o bad.png
if [ $have_gnuplot -eq 1 ]; then
    expect_ok sl plot landscape a.csv -o a.png
    check "plot landscape: PNG" is_png a.png
    expect_ok sl plot trace trace.csv trace.csv -o t.png
    check "plot trace: PNG" is_png t.png
    expect_ok sl plot census c2.csv -o c.png
    check "plot census: PNG" is_png c.png
    expect_ok sl plot sweep sweep.csv -o s.png
    check "plot sweep: PNG" is_png s.png
    expect_ok sl landscape --input d2.csv --k 2 --score exact --dist gauss --grid 15 -o p.csv \
        --png p.png
    check "landscape --png: PNG" is_png p.png
    expect_ok sl census --input d2.csv --k 2 --score exact --dist gauss --restarts 3 -o pc.csv \
        --png pc.png
    check "census --png: PNG" is_png pc.png
    expect_fail 1 "no column 'dist'" bad.png sl plot sweep trace.csv -o bad.png
    expect_fail 1 "missing.csv" bad.png sl plot landscape missing.csv -o bad.png
    expect_fail 1 "no column .u." bad.png sl plot landscape trace.csv -o bad.png
fi
# Without gnuplot: the CSV is written, one warning line, exit 0; plot fails.
SL_GNUPLOT=/nonexistent/gnuplot sl landscape --input d2.csv --k 2 --score exact --dist gauss \
    --grid 9 -o ng.csv --png ng.png >"$T/stdout" 2>"$T/stderr"
rc=$?
check "no gnuplot: exit 0" test $rc -eq 0
check "no gnuplot: CSV written, no PNG" test -f ng.csv -a ! -e ng.png
check "no gnuplot: one warning line" test "$(wc -l <"$T/stderr")" -eq 1
expect_fail 1 "gnuplot not found" ng2.png env SL_GNUPLOT=/nonexistent/gnuplot "$SL" plot landscape ng.csv -o ng2.png

echo "cli_landscape: $passed passed, $failed failed"
[ $failed -eq 0 ]
