#!/bin/sh
# Draws the benchmark plots: tools/bench/plot.sh DATA_DIR [OUT_DIR]
# DATA_DIR is what `shmbus-bench --plot-data DATA_DIR` wrote; OUT_DIR defaults to docs/bench
# of this repository. Needs gnuplot (Debian: gnuplot-nox).
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DATA_DIR [OUT_DIR]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
data=$1
out=${2:-$here/../../docs/bench}
mkdir -p "$out"
gnuplot -e "datadir='$data'; outdir='$out'" "$here/plot.gnuplot"
echo "plots written to $out"
