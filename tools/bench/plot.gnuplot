# Plots of a shmbus-bench run, from the data files `shmbus-bench --plot-data DIR` writes.
#
#   gnuplot -e "datadir='DIR'; outdir='docs/bench'" tools/bench/plot.gnuplot
#
# (tools/bench/plot.sh does this.) Draws four PNGs into outdir:
#   latency.png       one-way latency percentiles at 128 B per transport (log scale)
#   latency_size.png  one-way p50 latency against message size per transport (log-log)
#   throughput.png    messages per second at 128 B, one and 64 per publish (log scale)
#   bandwidth.png     bytes per second against message size, large messages
if (!exists("datadir")) datadir = "."
if (!exists("outdir")) outdir = "."

set terminal pngcairo size 1200,650 font ",10" noenhanced
# Ten distinct colours: a full run has nine or ten series per plot.
set linetype 9 lc rgb "#8c564b" lw 1 pt 9
set linetype 10 lc rgb "#7f7f7f" lw 1 pt 10
set linetype cycle 10
set grid ytics mxtics mytics
set key top left

# --- latency percentiles at 128 B ---------------------------------------------------------
set output outdir."/latency.png"
set title "One-way latency, 128-byte messages (RTT/2; median of runs)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [0.01:*]
set ylabel "microseconds (log scale)"
set xtics rotate by -25 scale 0
plot datadir."/latency_128.dat" using 2:xtic(1) title "p50", \
     "" using 3 title "p90", "" using 4 title "p99", "" using 5 title "p99.9"

# --- throughput at 128 B -------------------------------------------------------------------
set output outdir."/throughput.png"
set title "Throughput, 128-byte messages (messages per second per reader; median of runs)"
set ylabel "million messages / s (log scale)"
set yrange [*:*]
plot datadir."/throughput_128.dat" using 2:xtic(1) title "1 message per publish", \
     "" using 3 title "64 messages per publish"

# --- latency against size ------------------------------------------------------------------
unset style
set style data linespoints
set xtics norotate
set output outdir."/latency_size.png"
set title "One-way p50 latency against message size"
set logscale xy
set xlabel "message size (bytes, log scale)"
set ylabel "microseconds (log scale)"
set key outside right top
set autoscale
stats datadir."/latency_size.dat" skip 1 nooutput
columns = STATS_columns
plot for [i=2:columns] datadir."/latency_size.dat" using 1:i title columnheader(i) \
     with linespoints lw 2 pt (i % 7 + 4) ps 0.9

# --- bandwidth against size ----------------------------------------------------------------
set output outdir."/bandwidth.png"
set title "Large-message bandwidth (writer fills, reader checksums every byte)"
set logscale xy
set ylabel "GB/s (log scale)"
stats datadir."/bandwidth.dat" skip 1 nooutput
columns = STATS_columns
plot for [i=2:columns] datadir."/bandwidth.dat" using 1:i title columnheader(i) \
     with linespoints lw 2 pt (i % 7 + 4) ps 0.9
