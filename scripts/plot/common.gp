# Shared terminal setup for the scoreloss pictures: pngcairo when gnuplot
# has it, else the libgd png terminal. Called by the other scripts with
# outfile set.
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 900,700 enhanced font "sans,11"
} else {
    set terminal png size 900,700
}
set output outfile
