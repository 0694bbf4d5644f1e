# Error against the sample size, log-log: mean over seeds with standard-error
# bars, one line per (loss, score) group. Variables: sweepfile (blocks
# "n mean se count" separated by two blank lines), ngroups, titles
# (quoted words: "a" "b" ..), outfile, plottitle.
load dir . "common.gp"
set title plottitle noenhanced
set xlabel "n (samples)"
set ylabel "error (max form)"
set logscale xy
set format x "%g"
set format y "%g"
set grid
set key outside right noenhanced
plot for [i = 0:ngroups - 1] sweepfile index i using 1:2:3 with yerrorlines lw 2 pt 7 title word(titles, i + 1)
