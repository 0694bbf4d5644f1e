# Error (or loss) against step, one line per trace file (the best restart
# of each). Variables: tracedir (files trace1.dat.. with "step value"),
# ntraces, titles (quoted words: "a" "b" ..), ylabel, outfile, plottitle.
load dir . "common.gp"
set title plottitle noenhanced
set xlabel "step"
set ylabel ylabel
set logscale y
# Errors at rounding level would stretch the axis over 16 decades.
set yrange [1e-8 < * : *]
set format y "%g"
set grid
set key outside bottom center horizontal noenhanced
set datafile separator whitespace
plot for [i = 1:ntraces] sprintf("%s/trace%d.dat", tracedir, i) using 1:2 with lines lw 2 title word(titles, i)
