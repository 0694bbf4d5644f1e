# A loss on a plane or on the angle square: heat map, contours, the grid's
# local minima (circles) and the marked points (truth, centre, second point).
# Variables (set by scoreloss): gridfile (u v loss, blank line between rows
# of constant v), minfile (u v), markfile (u v name), nmin, nmark, outfile,
# plottitle.
load dir . "common.gp"
set table $contours
set contour base
unset surface
set cntrparam levels auto 14
splot gridfile using 1:2:3 with lines notitle
unset table
unset contour
set surface
set title plottitle noenhanced
set xlabel "u"
set ylabel "v"
set palette cubehelix negative
set cblabel "loss"
set autoscale fix
set key outside bottom center horizontal
cmd = "plot gridfile using 1:2:3 with image notitle, $contours using 1:2 with lines lc rgb '#404040' lw 0.6 notitle"
if (nmin > 0) cmd = cmd . ", minfile using 1:2 with points pt 6 ps 1.6 lw 2 lc rgb '#0060ff' title 'grid minima'"
if (nmark > 0) cmd = cmd . ", markfile using 1:2 with points pt 2 ps 2 lw 2.5 lc rgb '#e00000' title 'marked', markfile using 1:2:3 with labels offset 1.2,0.8 left tc rgb '#e00000' notitle"
eval cmd
