# The census: one bar per cluster of end points, its fraction of the
# restarts, green for the global minimum and red for spurious ones.
# Variables: barfile (index fraction global "label"), outfile, plottitle.
load dir . "common.gp"
set title plottitle noenhanced
set ylabel "fraction of restarts"
set yrange [0:1.05]
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -35 noenhanced
set grid ytics
set key top right
plot barfile using 1:2:($3 > 0 ? 0x2ca02c : 0xd62728):xtic(4) with boxes lc rgb variable notitle, \
     barfile using 1:2:(sprintf('%.3g%%', 100 * $2)) with labels offset 0,0.8 notitle, \
     NaN with boxes lc rgb '#2ca02c' title 'global minimum', \
     NaN with boxes lc rgb '#d62728' title 'spurious'
