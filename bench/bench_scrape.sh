#!/usr/bin/env bash
# promacct scrape benchmark (issue 14): memory and throughput of the outputs
# with a large state, side by side with another binary.
#
#   bash bench/bench_scrape.sh                  (this checkout only)
#   BASE=/path/to/old/promacct bash bench/bench_scrape.sh
#
# e.g. BASE from the last commit before streaming:
#   git worktree add /tmp/pre-stream 8927f66~1 &&
#   cmake -S /tmp/pre-stream -B /tmp/pre-stream/b -DCMAKE_BUILD_TYPE=Release -DPROMACCT_TESTS=OFF &&
#   cmake --build /tmp/pre-stream/b -j2 && BASE=/tmp/pre-stream/b/promacct bash bench/bench_scrape.sh
#
# State: a 5M-packet capture from bench/gen.c (180k IPv4 + 20k IPv6
# addresses) accounted with -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000:
# 1.18M address histograms, a 1.1 GB page. For each binary it prints: the
# idle RSS once the file is read; the peak RSS (VmHWM) after one scrape and
# after 4 concurrent scrapes (2 gzip, 2 plain); the median wall time of RUNS
# (default 3) single plain scrapes read by curl into /dev/null (page MB/s);
# the same for gzip; and the peak RSS of --once writing to /dev/null.
# Environment: BENCH_DIR (default /tmp/promacct-bench) for the build and the
# capture (400 MB), PACKETS (default 5000000) to scale the state.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
DIR=${BENCH_DIR:-/tmp/promacct-bench}
PACKETS=${PACKETS:-5000000}
B=$DIR/build-scrape
mkdir -p "$DIR"
if [ -f "$B/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$B/CMakeCache.txt"; then
	rm -rf "$B"
fi
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DPROMACCT_TESTS=OFF >/dev/null
cmake --build "$B" -j"$(nproc)" >/dev/null
F=$DIR/scrape$PACKETS.pcap
[ -f "$F" ] || "$B/bench/bench_gen" "$F" "$PACKETS" 180000 64 20000
cat "$F" >/dev/null
STATE=(-R "$F" -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

measure() { # NAME BINARY
	local name=$1 p=$2 port pid idle one four t page gz once
	port=$((10000 + RANDOM % 20000))
	"$p" "${STATE[@]}" --web.listen-address "127.0.0.1:$port" 2>"$DIR/scrape-agent.log" &
	pid=$!
	for _ in $(seq 1 1200); do
		grep -q 'msg="capture file read"' "$DIR/scrape-agent.log" && break
		sleep 0.1
	done
	sleep 0.5
	local url="http://127.0.0.1:$port/metrics"
	idle=$(kib "$pid" VmRSS)
	page=$(curl -fsS "$url" | wc -c)
	one=$(kib "$pid" VmHWM)
	local pids=()
	for _ in 1 2; do
		curl -fsS -o /dev/null "$url" &
		pids+=($!)
		curl -fsS -H 'Accept-Encoding: gzip' -o /dev/null "$url" &
		pids+=($!)
	done
	for q in "${pids[@]}"; do wait "$q"; done
	four=$(kib "$pid" VmHWM)
	: >"$DIR/t.plain"
	: >"$DIR/t.gzip"
	for _ in $(seq 1 "$RUNS"); do
		curl -fsS -o /dev/null -w '%{time_total}\n' "$url" >>"$DIR/t.plain"
		curl -fsS -H 'Accept-Encoding: gzip' -o /dev/null -w '%{time_total}\n' "$url" >>"$DIR/t.gzip"
	done
	t=$(median <"$DIR/t.plain")
	gz=$(median <"$DIR/t.gzip")
	kill "$pid"
	wait "$pid" || true
	once=$("$B/bench/bench_runstat" "$p" "${STATE[@]}" --once 2>&1 >/dev/null | tail -n1 | awk '{ print $4 }')
	awk -v n="$name" -v i="$idle" -v o="$one" -v f="$four" -v pg="$page" -v t="$t" -v g="$gz" -v once="$once" 'BEGIN {
		printf "%-8s idle %5.0f MiB | 1 scrape: peak %+6.0f MiB | 4 at once (2 gzip, 2 plain): peak %+6.0f MiB | --once: peak %+6.0f MiB\n",
			n, i / 1024, (o - i) / 1024, (f - i) / 1024, (once - i) / 1024
		printf "%-8s page %.0f MB: plain scrape %.2f s (%.0f MB/s), gzip scrape %.2f s (%.0f MB/s of text) (medians of '"$RUNS"')\n",
			n, pg / 1e6, t, pg / 1e6 / t, g, pg / 1e6 / g }'
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); state: $PACKETS packets, -r 0.0.0.0/0 -r ::/0"
if [ -n "${BASE:-}" ]; then
	measure base "$BASE"
fi
measure this "$B/promacct"
