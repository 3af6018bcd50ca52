#!/usr/bin/env bash
# promacct soak (issue 10): a long live run with every output busy, to show
# that memory and file descriptors stay flat.
#
#   bash bench/soak.sh            (as root: makes a veth pair and a namespace)
#
# For SOAK_SECONDS (default 600) a tcpreplay loop (SOAK_PPS packets/s,
# default 20000; 4,096 addresses in two ranges, TCP/UDP/ICMP, IPv4 and IPv6)
# feeds a live agent over a veth pair, while /metrics is scraped every
# second, the agent pushes to a real Pushgateway every 2 s and remote-writes
# to a real VictoriaMetrics every 2 s. Every 10 s it samples the agent's RSS
# and open file descriptors; at the end it prints start (the first sample,
# after a 10 s warm-up), peak and end of each, the scrapes that failed, and
# the capture counters. Not part of the test suite (it takes minutes).
# Needs: sh deploy/install-deps.sh --bench (tcpreplay, prometheus-pushgateway,
# victoria-metrics, curl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SOAK_SECONDS:-600}
PPS=${SOAK_PPS:-20000}
DIR=${BENCH_DIR:-/tmp/promacct-bench}/soak.$$
B=${BENCH_DIR:-/tmp/promacct-bench}/soak-build
[ "$(id -u)" = 0 ] || {
	echo "needs root (veth pair, network namespace)" >&2
	exit 1
}
mkdir -p "$DIR"
if [ -f "$B/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$B/CMakeCache.txt"; then
	rm -rf "$B"
fi
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$B" -j"$(nproc)" --target promacct pcapgen >/dev/null

PIDS=()
NS=promacct-soak$$
HOST_IF=ps$$h
NS_IF=ps$$n
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	ip link del "$HOST_IF" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip link set "$NS_IF" up

port() { # a free loopback port below the ephemeral range
	local p
	while :; do
		p=$((10000 + RANDOM % 20000))
		[ -z "$(ss -Htan "sport = :$p")" ] && echo "$p" && return
	done
}

# 4,096 addresses: 10.90.0.0/20 (customer=a) and 2001:db8:90::/116
# (customer=b), talking to a few peers.
{
	for i in $(seq 0 3071); do
		echo "ip4 10.90.$((i / 256)).$((i % 256)) 192.0.2.$((i % 8 + 1)) $(((i % 3 == 0) ? 17 : 6)) $((64 + (i * 37) % 1400))"
		echo "ip4 192.0.2.$((i % 8 + 1)) 10.90.$((i / 256)).$((i % 256)) 6 $((64 + (i * 91) % 1450))"
	done
	for i in $(seq 0 1023); do
		echo "ip6 2001:db8:90::$(printf %x "$i") 2001:db8:ffff::1 17 $((80 + (i * 13) % 1400))"
	done
	echo "ip4 10.90.0.1 192.0.2.1 1 98 count 50"
} >"$DIR/soak.spec"
"$B/tests/pcapgen" en10mb "$DIR/soak.pcap" <"$DIR/soak.spec"

web=$(port)
pg=$(port)
vm=$(port)
prometheus-pushgateway --web.listen-address "127.0.0.1:$pg" --persistence.file= \
	--log.level=warn >"$DIR/pg.log" 2>&1 &
PIDS+=($!)
mkdir -p "$DIR/vm"
victoria-metrics -httpListenAddr="127.0.0.1:$vm" -storageDataPath="$DIR/vm" -retentionPeriod=1d \
	-loggerLevel=WARN >"$DIR/vm.log" 2>&1 &
PIDS+=($!)
sleep 1
"$B/promacct" -i "$HOST_IF" -r 10.90.0.0/20:customer=a -r 2001:db8:90::/116:customer=b \
	--web.listen-address "127.0.0.1:$web" \
	--push.gateway "http://127.0.0.1:$pg" --push.interval 2s \
	--remote-write.url "http://127.0.0.1:$vm/api/v1/write" --remote-write.interval 2s \
	>"$DIR/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$web/metrics" 2>/dev/null && break
	sleep 0.1
done
ip netns exec "$NS" tcpreplay -q -i "$NS_IF" --pps "$PPS" --loop 0 "$DIR/soak.pcap" \
	>"$DIR/tcpreplay.log" 2>&1 &
PIDS+=($!)

sample() { # "rss_kB fds"
	echo "$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT/status") $(ls "/proc/$AGENT/fd" | wc -l)"
}
failed=0
scrapes=0
t0=$SECONDS
next=$((t0 + 10))
rss0="" fd0="" rssmax=0 fdmax=0 rss=0 fd=0
echo "soak: ${SECS}s, $PPS packets/s, scrapes every 1s, push and remote write every 2s"
printf '%6s %10s %5s\n' "t(s)" "RSS(kB)" "fds"
while [ $((SECONDS - t0)) -lt "$SECS" ]; do
	scrapes=$((scrapes + 1))
	curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$web/metrics" || failed=$((failed + 1))
	if [ "$SECONDS" -ge "$next" ]; then
		read -r rss fd < <(sample)
		[ -z "$rss0" ] && rss0=$rss fd0=$fd
		[ "$rss" -gt "$rssmax" ] && rssmax=$rss
		[ "$fd" -gt "$fdmax" ] && fdmax=$fd
		printf '%6d %10d %5d\n' $((SECONDS - t0)) "$rss" "$fd"
		next=$((next + 10))
	fi
	sleep 1
done
curl -fsS "http://127.0.0.1:$web/metrics" >"$DIR/page.txt"
v() { awk -v s="$1" '$1 == s { print $2 }' "$DIR/page.txt"; }
echo "RSS kB: start $rss0, peak $rssmax, end $rss"
echo "open fds: start $fd0, peak $fdmax, end $fd"
echo "scrapes: $scrapes, failed $failed"
echo "frames counted $(v "promacct_packet_size_bytes_all_count{interface=\"$HOST_IF\"}"), kernel drops $(v "promacct_pcap_dropped_packets_total{interface=\"$HOST_IF\"}"), tracked addresses $(v promacct_tracked_addresses)"
grep -E '^promacct_(push_requests_total|remote_write_samples_total)' "$DIR/page.txt" || true
