#!/bin/sh
# make bench: every figure beside a floor measured in the same run.
# BENCH_QUICK=1: the spawning part (bench/spawn.py) in its quick mode.
set -e
BUILD=${1:-build}
DIR=$(mktemp -d "$PWD/bench-data.XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); data on $(df -h "$DIR" | awk 'NR==2{print $1}')"
echo
"$BUILD/bench/store_bench" "$DIR/store" 2>/dev/null || true
echo
"$BUILD/bench/berth_bench" "$BUILD/berth" "$(cd "$BUILD/programs" && pwd)/kv" "$DIR/host"
echo
"$BUILD/bench/idle_bench" "$BUILD/berth" "$(cd "$BUILD/programs" && pwd)/kv" "$DIR/idle"
echo
sh bench/cluster.sh "$BUILD" "$DIR/cluster"
echo
python3 bench/crawl.py "$BUILD" "$DIR/crawl"
echo
python3 bench/messages.py "$BUILD" "$DIR/messages"
echo
python3 bench/emergency.py "$BUILD" "$DIR/emergency"
echo
python3 bench/caps.py "$BUILD" "$DIR/caps"
echo
python3 bench/spawn.py "$BUILD" "$DIR/spawn" ${BENCH_QUICK:+--quick}
echo
python3 bench/stderr_flood.py "$BUILD" "$DIR/stderr"
echo
python3 bench/log_level.py "$BUILD" "$DIR/loglevel"
echo
python3 bench/tls.py "$BUILD" "$DIR/tls"
echo
python3 bench/websocket.py "$BUILD" "$DIR/websocket"
