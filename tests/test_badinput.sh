#!/bin/sh
# The bad-input matrix: a table of inputs that scoreloss must refuse, across
# all subcommands. Each case asserts
#   - the exit status (1 a failure while running, 2 a wrong command line),
#   - exactly one line on stderr, "scoreloss SUB: ...", matching the case's
#     pattern and naming the file (with line and column where the data is at
#     fault) or the option,
#   - nothing on stdout,
#   - and that no output file was created, or an existing one left untouched
#     (odd-numbered cases find their outputs already there), with no
#     temporary file left beside it.
#
#   test_badinput.sh PATH/TO/scoreloss PATH/TO/plugin_gumbel.so
#
# Cases whose message is known not to name the file or option are marked
# "gap" in the table: their other assertions hold, the missing name is listed
# as a KNOWN GAP line rather than a failure. Prints one line per failure, then
# "badinput: N passed, N failed, N known gaps, N skipped".

SL=${1:?usage: test_badinput.sh PATH/TO/scoreloss PATH/TO/plugin_gumbel.so}
PLUGIN=${2:?usage: test_badinput.sh PATH/TO/scoreloss PATH/TO/plugin_gumbel.so}
case $SL in /*) ;; *) SL=$(pwd)/$SL ;; esac
case $PLUGIN in /*) ;; *) PLUGIN=$(pwd)/$PLUGIN ;; esac
# A shared object that loads but exports no sl_plugin_init: the library.
NOSYM=$(dirname "$SL")/libscoreloss.so
[ -f "$NOSYM" ] || NOSYM=$(ls /lib/*/libm.so.6 /usr/lib/*/libm.so.6 2>/dev/null | head -n 1)

T=$(mktemp -d "${TMPDIR:-/tmp}/test_badinput.XXXXXX") || exit 1
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cd "$T" || exit 1

passed=0 failed=0 gaps=0 skipped=0
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

body() { grep -v '^#' "$1"; }

# ---- fixtures ------------------------------------------------------------------

make_fixtures() {
    "$SL" sample --dist gauss --d 3 --n 200 --seed 1 -o x.csv &&
        "$SL" plant --input x.csv --k 2 --seed 1 -o data.csv --truth truth.csv &&
        "$SL" sample --dist gauss --d 2 --n 50 --seed 2 -o x2.csv &&
        "$SL" plant --input x2.csv --k 1 --seed 2 -o data2.csv --truth truth2.csv || return 1
    printf 'x1,x2,x3\n1,2,3\n4,5\n' >ragged.csv
    printf 'x1,x2,x3\n1,2,3\n4,5,6,7\n' >long.csv
    printf 'x1,x2,x3\n1,2,3\n4,abc,6\n' >nonnum.csv
    printf 'x1,x2,x3\n1,2,3\nNaN,5,6\n' >nan.csv
    printf 'x1,x2,x3\n1,2,3\n4,5,-inf\n' >inf.csv
    printf 'x1,x2,x3\n1,2,3\n4,1e999,6\n' >overflow.csv
    printf 'x1,x2,x3\n1,2,3\n0x10,5,6\n' >hex.csv
    printf 'x1,x2,x3\n1,,3\n' >emptyfield.csv
    : >empty.csv
    printf 'x1,x2,x3\n' >header.csv
    printf '# only\n\n# comments\n' >comments.csv
    printf 'x1,x2,x3\n1,2,3\n4,5\0006\n' >binary.csv
    { printf 'x1,x2,x3\n1,2,3\n4,'; head -c 1000000 /dev/zero | tr '\0' 7; printf 'z,6\n'; } >hugefield.csv
    printf 'a,b,c\n1,2,3\n' >nox.csv
    printf 'x1,x3\n1,2\n' >gap.csv
    printf 'x1,x2,x1\n1,2,3\n' >dupcol.csv
    printf 'x1,,x3\n1,2,3\n' >emptyname.csv
    printf '1,2,3\n4,5,6\n' >numhdr.csv
    mkdir -p adir
    { printf 'x1,x2,x3\n'; i=0; while [ $i -lt 40 ]; do printf '0.5,0.5,0.5\n'; i=$((i + 1)); done; } >ident.csv
    printf 'x1,x2,x3,x4,x5,y\n1,2,3,4,5,1\n2,1,3,4,5,0\n' >tiny.csv
    printf 'x1,x2,x3\n1,2,3\n4,5,6\n' >noy.csv
    { body data.csv | head -n 3; printf '1,2,3,nan\n'; } >ynan.csv
    cp x.csv unreadable.csv && chmod 000 unreadable.csv
    printf 'weight,m1,m2,c1_1,c1_2,c2_1,c2_2\n1,0,0,1,2,2,1\n' >p_notspd.csv
    printf 'weight,m1,m2,c1_1,c1_2,c2_1,c2_2\n1,0,0,1,0.5,0.2,1\n' >p_asym.csv
    printf 'weight,m1,m2,c1_1,c1_2,c2_1,c2_2\n-1,0,0,1,0,0,1\n' >p_negw.csv
    printf 'weight,m1,m2,c1_1,c1_2,c2_1,c2_2\n1,0,0,1,0,0,1\n1,1,1,1,0,0,1\n' >p_two.csv
    printf 'weight,m1,m2,m3,c1_1\n1,0,0,0,1\n' >p_dim.csv
    printf 'weight,m1,m2,c1_1,c1_2,c2_1,c2_2\n1,0,nan,1,0,0,1\n' >p_nan.csv
    printf 'weight,m1,m2\n1,0,0\n' >p_nocov.csv
    printf 'b,w1,w2,w3\n1,1,0,0\n' >truth_noa.csv
    printf 'dist = gauss\nd = 3\nk = 2\nn = 100\nseeds = 1..2\nfrobnicate = 1\n' >s_key.conf
    printf 'dist = gauss\nd = 3\nk = 2\nn = 100\nseeds = 5..1\n' >s_range.conf
    printf 'dist = gauss\nd = 3\nk = 2\n' >s_non.conf
    printf 'dist = gauss\nd = 3\nk = 2\nn = abc\n' >s_nan.conf
    printf 'dist = gauss\nd = 3\nk = 2\nn = 100\na = "1,2\n' >s_quote.conf
}

if ! make_fixtures >fixtures.log 2>&1; then
    echo "FAIL: fixtures: $(head -c 300 fixtures.log)"
    echo "badinput: 0 passed, 1 failed, 0 known gaps, 0 skipped"
    exit 1
fi
FIXTURES=$(ls)

# ---- the table -------------------------------------------------------------------
#
# STATUS | PATTERN (extended regex) | ARGUMENTS (shell words after scoreloss) | NOTE
# NOTE: "gap" (message known not to name the file or option), "needs-nonroot"
# (permissions do not bind root), or empty. Outputs are the values of -o,
# --output, --truth, --trace and --png.

CASES=$(
    cat <<'EOF'
1 | ragged\.csv line 3: ragged row: 2 fields where the header has 3 | score --method llsfe --input ragged.csv -o out.csv |
1 | long\.csv line 3: ragged row: 4 fields | sample --input long.csv --n 5 -o out.csv |
1 | nonnum\.csv line 3, column 2 \(x2\): not a number 'abc' | plant --input nonnum.csv --k 1 -o out.csv --truth out2.csv |
1 | nan\.csv line 3, column 1 \(x1\): non-finite value 'NaN' | sample --input nan.csv --n 5 -o out.csv |
1 | inf\.csv line 3, column 3 \(x3\): non-finite value '-inf' | score --method exact --dist gauss --input x.csv --at inf.csv -o out.csv |
1 | overflow\.csv line 3, column 2 \(x2\): non-finite value '1e999' | recover --input overflow.csv --k 1 -o out.csv |
1 | hex\.csv line 3, column 1 \(x1\): not a number '0x10' | landscape --input hex.csv --k 1 -o out.csv |
1 | emptyfield\.csv line 2, column 2 \(x2\): empty field | census --input emptyfield.csv --k 1 -o out.csv |
1 | empty\.csv: empty file | recover --input empty.csv --k 1 -o out.csv |
1 | header\.csv: no data rows after the header | score --method gauss --input header.csv -o out.csv |
1 | comments\.csv: empty file \(no header row\) | plant --input comments.csv --k 1 -o out.csv --truth out2.csv |
1 | binary\.csv line 3: binary data \(NUL byte\) | score --method hermite --input binary.csv -o out.csv |
1 | hugefield\.csv line 3, column 2 \(x2\): not a number '7+\.\.\.' | sample --input hugefield.csv --n 3 -o out.csv |
1 | nox\.csv: missing columns x1, x2 | score --method kde --input nox.csv -o out.csv |
1 | gap\.csv: column 'x3' present but 'x2' missing | landscape --input gap.csv --k 1 -o out.csv |
1 | dupcol\.csv line 1, column 3: duplicate column name 'x1' | recover --input dupcol.csv --k 1 -o out.csv |
1 | emptyname\.csv line 1, column 2: empty column name | census --input emptyname.csv --k 1 -o out.csv |
1 | numhdr\.csv line 1: the first row is numbers | score --method gauss --input numhdr.csv -o out.csv |
1 | adir: is a directory | score --method llsfe --input adir -o out.csv |
1 | nosuch\.csv: cannot open | recover --input nosuch.csv --k 1 -o out.csv |
1 | unreadable\.csv: cannot open: Permission denied | score --method gauss --input unreadable.csv -o out.csv | needs-nonroot
1 | -: empty file | score --method gauss --input - -o out.csv |
1 | noy\.csv: missing column 'y' | recover --input noy.csv --k 1 -o out.csv |
1 | ynan\.csv line 4, column 4 \(y\): non-finite value 'nan' | recover --input ynan.csv --k 1 -o out.csv |
1 | ident\.csv: the samples are all identical | score --method llsfe --input ident.csv -o out.csv |
1 | tiny\.csv: 2 samples leave 2 to fit .* too few for k = 2 | recover --input tiny.csv --k 2 -o out.csv |
1 | query points x2\.csv have d = 2 .*samples x\.csv have d = 3 | score --method gauss --input x.csv --at x2.csv -o out.csv |
2 | option --k: k = 4 exceeds d = 3 | recover --input data.csv --k 4 -o out.csv |
1 | option --dist: p_notspd\.csv: covariance of component 1 is not symmetric positive definite | sample --dist gmm:p_notspd.csv --d 2 --n 5 -o out.csv |
1 | option --dist: p_asym\.csv: row 1: covariance is not symmetric | sample --dist gmm:p_asym.csv --d 2 --n 5 -o out.csv |
1 | option --dist: p_negw\.csv: row 1: weight -1 must be positive | sample --dist gmm:p_negw.csv --d 2 --n 5 -o out.csv |
1 | option --dist: p_two\.csv: a Gaussian takes exactly one parameter row, found 2 | sample --dist gauss:p_two.csv --d 2 --n 5 -o out.csv |
2 | option --dist: p_dim\.csv: the means have dimension 3 .* dimension 2 | score --method exact --dist gmm:p_dim.csv --input x2.csv -o out.csv |
1 | option --dist: p_nan\.csv line 2, column 3 \(m2\): non-finite value | sample --dist gauss:p_nan.csv --d 2 --n 5 -o out.csv |
1 | option --dist: p_nocov\.csv: missing column 'c1_1' | sample --dist gmm:p_nocov.csv --d 2 --n 5 -o out.csv |
1 | option --dist: .*nosuch\.csv: cannot open | sample --dist gmm:nosuch.csv --d 2 --n 5 -o out.csv |
2 | option --dist: distribution 'gauss:': empty parameter file name | sample --dist gauss: --d 2 --n 5 -o out.csv |
2 | option --dist: distribution 'student:abc': .*expected a positive number | sample --dist student:abc --d 2 --n 5 -o out.csv |
2 | option --dist: distribution 'gmm2:3': gmm2 takes no argument | sample --dist gmm2:3 --d 2 --n 5 -o out.csv |
2 | option --dist: unknown distribution 'gumbel' | score --method exact --dist gumbel --input x.csv -o out.csv |
2 | option --dist: distribution 'plugin:': expected plugin:PATH\.so | sample --dist plugin: --d 2 --n 5 -o out.csv |
2 | option --dist: .*does not export sl_plugin_init | sample --dist "plugin:$NOSYM" --d 2 --n 5 -o out.csv |
1 | option --dist: cannot load plug-in '/nonexistent/p\.so' | sample --dist plugin:/nonexistent/p.so --d 2 --n 5 -o out.csv |
2 | option --dist: .*plugin_gumbel.*unknown argument 'bogus' | score --method exact --dist "plugin:$PLUGIN:bogus" --input x.csv -o out.csv |
1 | truth_noa\.csv: missing column 'a' | plant --input x.csv --truth-in truth_noa.csv -o out.csv --truth out2.csv |
1 | truth\.csv has 3 inputs .*x2\.csv has d = 2 | plant --input x2.csv --truth-in truth.csv -o out.csv --truth out2.csv |
1 | truth2\.csv has 2 inputs .*data\.csv has d = 3 | recover --input data.csv --k 2 --truth truth2.csv -o out.csv |
2 | s_key\.conf:6:1: unknown key 'frobnicate' | sweep s_key.conf -o out.csv |
2 | s_range\.conf:5:9: key 'seeds': the range 5\.\.1 is empty | sweep s_range.conf -o out.csv |
2 | s_non\.conf: missing key 'n' | sweep s_non.conf -o out.csv |
2 | s_nan\.conf:4:5: key 'n': expected a positive integer | sweep s_nan.conf -o out.csv |
2 | s_quote\.conf:5:5: unterminated quote | sweep s_quote.conf -o out.csv |
1 | nosuch\.conf | sweep nosuch.conf -o out.csv |
1 | numhdr\.csv: no column 'restart' | plot trace numhdr.csv -o out.png |
2 | unknown KIND 'nosuchkind' | plot nosuchkind x.csv -o out.png |
1 | adir: cannot move the output into place: Is a directory | sample --dist gauss --d 2 --n 5 -o adir |
1 | /nonexistent/dir/out\.csv: cannot write | sample --dist gauss --d 2 --n 5 -o /nonexistent/dir/out.csv |
1 | adir: cannot move the output into place | plant --input x.csv --k 2 -o out.csv --truth adir |
1 | /nonexistent/t\.csv: cannot write | recover --input data.csv --k 2 --epochs 1 --restarts 1 -o out.csv --trace /nonexistent/t.csv |
2 | give either --dist or --input, not both | sample --dist gauss --input x.csv --n 5 -o out.csv |
2 | option --bw-const: conflicts with --bandwidth | score --method llsfe --input x.csv --bandwidth 0.5 --bw-const 1 -o out.csv |
2 | missing option --dist SPEC | recover --input data.csv --k 2 --score exact -o out.csv |
2 | option --score: the l2 loss uses no scores | recover --input data.csv --k 2 --loss l2 --score exact --dist gauss -o out.csv |
2 | -o and --truth name the same file | plant --input x.csv --k 2 -o out.csv --truth out.csv |
2 | option --n: expected a positive integer, got '1e30' | sample --dist gauss --d 2 --n 1e30 -o out.csv |
2 | option --seed: expected a non-negative integer below 2\^64 | sample --dist gauss --d 2 --n 5 --seed 18446744073709551616 -o out.csv |
2 | option --noise: expected a number >= 0, got '1e999' | plant --input x.csv --k 2 --noise 1e999 -o out.csv --truth out2.csv |
2 | option --holdout: expected a number in \[0, 1\), got '1' | recover --input data.csv --k 2 --holdout 1 -o out.csv |
2 | option --lr: expected a number > 0, got '0' | recover --input data.csv --k 2 --lr 0 -o out.csv |
2 | option --grid: expected an integer from 3 to 2001 | landscape --input data.csv --k 2 --grid 100000 -o out.csv |
2 | option --restarts: expected an integer from 1 | census --input data.csv --k 2 --restarts 0 -o out.csv |
2 | option --d: expected a positive integer, got '0' | demo --d 0 |
2 | option --radius: expected a number > 0, got '-1' | score --method llsfe --input x.csv --radius -1 -o out.csv |
2 | option --mem-limit: memory limit 'lots': expected a positive size | sample --dist gauss --d 2 --n 5 --mem-limit lots -o out.csv |
2 | option --mem-limit: missing value | sample --dist gauss --d 2 --n 5 -o out.csv --mem-limit |
2 | option --mem-limit: given more than once | sample --dist gauss --d 2 --n 5 --mem-limit 1G --mem-limit 2G -o out.csv |
1 | an array of 100000 x 100 values needs 80 MB, over the memory limit .*--mem-limit | sample --dist gauss --d 100 --n 100000 --mem-limit 10M -o out.csv |
1 | reading x\.csv needs .* over the memory limit .*--mem-limit | score --method llsfe --input x.csv --mem-limit 1k -o out.csv |
EOF
)

# ---- the runner --------------------------------------------------------------------

# The files a command writes.
outputs_of() {
    want=
    for a in "$@"; do
        if [ -n "$want" ]; then
            printf '%s\n' "$a"
            want=
            continue
        fi
        case $a in
        -o | --output | --truth | --trace | --png) want=1 ;;
        --output=* | --truth=* | --trace=* | --png=*) printf '%s\n' "${a#*=}" ;;
        esac
    done
}

# Whether the message names an option, or one of the files on the command
# line, or quotes one of its words.
names_something() {
    msg=$1
    shift
    case $msg in *--[a-z]*) return 0 ;; esac
    for a in "$@"; do
        case $msg in *"'$a'"*) return 0 ;; esac
        case $a in
        -) case $msg in *"-: "*) return 0 ;; esac ;;
        -*) ;;
        *.* | */* | adir) case $msg in *"$a"*) return 0 ;; esac ;;
        esac
    done
    return 1
}

tab=$(printf '\t')
case_no=0
printf '%s\n' "$CASES" >cases.txt
while IFS= read -r line; do
    [ -z "$line" ] && continue
    case_no=$((case_no + 1))
    status=$(printf '%s' "$line" | awk -F' [|] ' '{ print $1 }')
    pattern=$(printf '%s' "$line" | awk -F' [|] ' '{ print $2 }')
    words=$(printf '%s' "$line" | awk -F' [|] ' '{ print $3 }')
    note=$(printf '%s' "$line" | awk -F' [|] ' '{ sub(/ *[|]? *$/, "", $4); print $4 }')
    words=${words% |}
    if [ "$note" = needs-nonroot ] && [ "$(id -u)" = 0 ]; then
        skipped=$((skipped + 1))
        continue
    fi
    eval "set -- $words"
    label="case $case_no: scoreloss $*"
    # Odd cases find their outputs already there; even cases must not create them.
    sums=
    for f in $(outputs_of "$@"); do
        case $f in out*) [ $((case_no % 2)) -eq 1 ] && printf 'kept %s\n' "$case_no" >"$f" ;; esac
        if [ -f "$f" ]; then
            sums="$sums$f$tab$(cksum <"$f")
"
        elif [ -e "$f" ]; then
            sums="$sums$f${tab}other
"
        else
            sums="$sums$f${tab}absent
"
        fi
    done
    # Standard input is an empty file of our own: /dev/null is not always a
    # device inside containers.
    : >stdin.txt
    "$SL" "$@" <stdin.txt >stdout.txt 2>stderr.txt
    rc=$?
    msg=$(head -n 1 stderr.txt)
    why=
    if [ "$rc" -ne "$status" ]; then
        why="exit $rc, expected $status"
    elif [ "$(wc -l <stderr.txt)" -ne 1 ]; then
        why="stderr has $(wc -l <stderr.txt) lines, expected 1"
    elif ! printf '%s\n' "$msg" | grep -q "^scoreloss $1: "; then
        why="stderr does not start with 'scoreloss $1: '"
    elif ! printf '%s\n' "$msg" | grep -Eq -- "$pattern"; then
        why="stderr does not match /$pattern/"
    elif [ -s stdout.txt ]; then
        why="stdout not empty"
    fi
    for f in $(outputs_of "$@"); do
        before=$(printf '%s' "$sums" | awk -F'\t' -v f="$f" '$1 == f { print $2; exit }')
        case $before in
        absent) [ -e "$f" ] && why="$why; created $f" ;;
        other) ;;
        *) [ "$(cksum <"$f")" = "$before" ] || why="$why; changed $f" ;;
        esac
        if ls "$f".tmp.* >/dev/null 2>&1; then why="$why; left a temporary file beside $f"; fi
    done
    # Nothing else appeared either (a stray output or temporary file).
    for f in $(ls); do
        case $f in stdin.txt | stdout.txt | stderr.txt | cases.txt | out*) continue ;; esac
        if ! printf '%s\n' "$FIXTURES" | grep -qxF "$f"; then
            why="$why; left $f"
            rm -rf "$f"
        fi
    done
    if [ -n "$why" ]; then
        fail "$label -> ${why#; }: $msg"
    elif ! names_something "$msg" "$@"; then
        if [ "$note" = gap ]; then
            gaps=$((gaps + 1))
            echo "KNOWN GAP: $label: the message names neither a file nor an option: $msg"
            passed=$((passed + 1))
        else
            fail "$label -> the message names neither a file nor an option: $msg"
        fi
    else
        [ "$note" = gap ] && echo "NOTE: $label is marked gap but names a file or option now: $msg"
        passed=$((passed + 1))
    fi
    rm -f out*
done <cases.txt

echo "badinput: $passed passed, $failed failed, $gaps known gaps, $skipped skipped"
[ "$failed" -eq 0 ]
