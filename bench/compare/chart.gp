# bench/compare/chart.gp — horizontal bars of the blitzio / Tokio speed-up per row.
#
# Reads ratios.dat from aggregate.py (y, row, ratio, colour; y = 0 is the bottom
# bar) and draws each bar from 1.0 to the row's ratio on a log x axis: green to
# the right where blitzio is faster, red to the left where Tokio is. The dashed
# line at 1.5 is the issue's target.
#
#     gnuplot -e "data='bench/results/ratios.dat'; out='bench/results/ratios'; subtitle='...'" \
#             bench/compare/chart.gp          # writes out.png and out.svg

if (!exists("data")) data = 'bench/results/ratios.dat'
if (!exists("out")) out = 'bench/results/ratios'
if (!exists("subtitle")) subtitle = ''

stats data using 3 nooutput
n = STATS_records
lo = STATS_min < 0.5 ? STATS_min / 1.4 : 0.5
hi = STATS_max > 2.0 ? STATS_max * 1.4 : 2.0
height = 120 + 26 * n

set logscale x 10
set xrange [lo:hi]
set yrange [-0.7:n - 0.3]
set xtics (0.1, 0.2, 0.5, 1, 1.5, 2, 5, 10, 20, 50, 100)
set mxtics 10
set grid xtics mxtics lc rgb '#e0e0e0' lw 1
set ytics scale 0 nomirror noenhanced
set xtics nomirror
set border 3
set tmargin 5
set xlabel "blitzio / Tokio speed-up  (Tokio ns/op ÷ blitzio ns/op, log scale; > 1 = blitzio faster)"
set title "blitzio vs Tokio, per row" . (strlen(subtitle) ? "\n" . subtitle : "") noenhanced
set key off
set style fill solid 0.85 noborder
set arrow 1 from 1, graph 0 to 1, graph 1 nohead lc rgb '#333333' lw 2 front
set arrow 2 from 1.5, graph 0 to 1.5, graph 1 nohead lc rgb '#888888' lw 1 dt 2 back
set label 1 "1.0" at 1, graph 1 offset 0, 0.6 center tc rgb '#333333'
set label 2 "target 1.5" at 1.5, graph 1 offset 0, 0.6 left tc rgb '#888888'

set terminal push
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 900, height font 'sans,10' enhanced
} else {
    set terminal png size 900, height enhanced
}
set output out . '.png'
# Bars: boxxyerror takes x, y, xlow, xhigh, ylow, yhigh; the colour comes from
# column 4 and the row name (column 2) becomes the y tic. Labels sit right of a
# green bar's end and left of a red one's.
plot data using (sqrt($3)):1:($3 < 1 ? $3 : 1):($3 < 1 ? 1 : $3):($1 - 0.38):($1 + 0.38):4:ytic(2) \
         with boxxyerror lc rgb variable, \
     '' using ($3 >= 1 ? $3 : 1/0):1:(sprintf(' %.2fx', $3)) with labels left font ',9' noenhanced, \
     '' using ($3 < 1 ? $3 : 1/0):1:(sprintf('%.2fx ', $3)) with labels right font ',9' noenhanced

set terminal svg size 900, height font 'sans,10' enhanced dynamic background rgb 'white'
set output out . '.svg'
replot
set output
set terminal pop
