# Error against the sample size, log-log: mean over seeds with standard-error
# bars, one line per group of runs (the parameters other than n and seed).
# Variables: sweepfile (blocks "n mean se count" separated by two blank
# lines), ngroups, titles (quoted words: "a" "b" ..), outfile, plottitle.
load dir . "common.gp"
set title plottitle noenhanced
set xlabel "n (samples)"
set ylabel "error (max form)"
set logscale xy
set format x "%g"
set format y "%g"
set grid
set key below noenhanced
# Lines 9 to 12 repeat the colours of 1 to 4 (gnuplot's default cycle),
# dashed and with open points, so that no two lines look alike.
set linetype 9 linecolor rgb "#9400d3" dashtype 2 pointtype 6
set linetype 10 linecolor rgb "#009e73" dashtype 2 pointtype 6
set linetype 11 linecolor rgb "#56b4e9" dashtype 2 pointtype 6
set linetype 12 linecolor rgb "#e69f00" dashtype 2 pointtype 6
plot for [i = 0:ngroups - 1] sweepfile index i using 1:2:3 with yerrorlines lt (i + 1) lw 2 \
    title word(titles, i + 1)
