#!/usr/bin/env bash
# Remote write under a large state: does the sender keep up?
#
#   bash bench/rw.sh [RECEIVER]       RECEIVER: delay (default) or victoria
#
# Reads a 5M-packet capture with -r 0.0.0.0/0 -r ::/0 (1.18M histograms,
# 10.6M samples per snapshot) and keeps serving it; every 15 s it remote-writes
# the state to
#   delay:    tests/tools/rw_receiver answering each request after DELAY_MS
#             (default 20 ms: a receiver one WAN round trip away), strict
#             checks on, samples counted but not logged;
#   victoria: the real victoria-metrics from Debian on a loopback port.
# After SECONDS_RUN (default 120) it prints what the agent counted as sent
# and dropped, what the receiver got, the agent's peak RSS, then stops the
# agent with SIGTERM. Environment: BENCH_DIR (default /tmp/promacct-bench),
# PROMACCT (a binary to compare; default: the Release build of this tree),
# RW_FLAGS (extra agent flags, e.g. "--remote-write.max-shards 1"), SKIP_BUILD
# (set: use the build tree as it is).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-delay}
DIR=${BENCH_DIR:-/tmp/promacct-bench}
RUN=${SECONDS_RUN:-120}
DELAY=${DELAY_MS:-20}
B=$DIR/build
mkdir -p "$DIR"
if [ -f "$B/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$B/CMakeCache.txt"; then
	rm -rf "$B"
fi
if [ -z "${SKIP_BUILD:-}" ]; then
	cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$B" -j"$(nproc)" --target promacct rw_receiver bench_gen >/dev/null
fi
P=${PROMACCT:-$B/promacct}
[ -f "$DIR/s5.pcap" ] || "$B/bench/bench_gen" "$DIR/s5.pcap" 5000000 180000 64 20000
W=$(mktemp -d "$DIR/rw.XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$W"' EXIT
port() { echo $((20000 + RANDOM % 10000)); }

if [ "$MODE" = victoria ]; then
	VP=$(port)
	victoria-metrics -httpListenAddr "127.0.0.1:$VP" -storageDataPath "$W/vm" \
		-retentionPeriod 1d >"$W/vm.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$VP/health" 2>/dev/null && break
		sleep 0.1
	done
	URL="http://127.0.0.1:$VP/api/v1/write"
else
	"$B/tests/rw_receiver" -q -d "$DELAY" 0 "$W/events" >"$W/recv.port" &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		[ -s "$W/recv.port" ] && break
		sleep 0.05
	done
	URL="http://127.0.0.1:$(head -n1 "$W/recv.port")/push"
fi

SP=$(port)
# shellcheck disable=SC2086
"$P" -R "$DIR/s5.pcap" -r 0.0.0.0/0 -r ::/0 --max-addresses 1000000 \
	--remote-write.url "$URL" --remote-write.interval 15s --web.listen-address "127.0.0.1:$SP" \
	${RW_FLAGS:-} 2>"$W/agent.log" &
AGENT=$!
PIDS+=($AGENT)
t0=$SECONDS
sleep "$RUN"
curl -fsS "http://127.0.0.1:$SP/metrics" | grep '^promacct_remote_write_' >"$W/self" || true
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$AGENT/status")
sent=$(awk '/samples_total.*result="sent"/ { s += $2 } END { printf "%.0f", s }' "$W/self")
dropped=$(awk '/samples_total.*result="dropped"/ { s += $2 } END { printf "%.0f", s }' "$W/self")
queued=$(awk '/^promacct_remote_write_queue_samples/ { s += $2 } END { printf "%.0f", s }' "$W/self")
if [ "$MODE" = victoria ]; then
	curl -fsS "http://127.0.0.1:$VP/internal/force_flush" >/dev/null || true
	got=$(curl -fsS "http://127.0.0.1:$VP/metrics" |
		awk '/^vm_rows_inserted_total\{type="promremotewrite"\}/ { print $2 }')
else
	got=$(awk '$1 == "R" && $2 == 200 { s += $3 } END { printf "%.0f", s }' "$W/events")
fi
echo "$MODE $(basename "$P") ${RW_FLAGS:-}: ${RUN}s: sent $sent, dropped $dropped, queued $queued, receiver got ${got:-?}, agent peak RSS $((rss / 1024)) MiB"
echo "  \"queue full\" log lines: $(grep -c 'queue full' "$W/agent.log" || true)"
snaps=$(grep -c 'msg="remote-write snapshot queued".*stale=0.*complete=1' "$W/agent.log" || true)
if [ "$snaps" -gt 0 ]; then # with --log.level debug
	echo "  snapshots queued whole: $snaps, seconds each (encoding): $(sed -n 's/.*msg="remote-write snapshot queued".*stale=0.* seconds=\([0-9.]*\) complete=1.*/\1/p' "$W/agent.log" | tr '\n' ' ')"
fi
t1=$SECONDS
kill -TERM "$AGENT"
wait "$AGENT" || true
echo "  SIGTERM to exit: $((SECONDS - t1)) s"
