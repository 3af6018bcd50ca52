#!/usr/bin/env bash
# End-to-end load (issue 10): a live replay (tcpreplay) over a veth pair from
# the test's own namespace, twice: once alone, once while wrk hammers
# /metrics with 64 connections for 10 s. Under load:
#   - no request fails (no socket error, no non-2xx answer),
#   - capture counts every frame the kernel did not drop, and the kernel
#     drops no more frames than in the replay without load.
. "$(dirname "$0")/lib.sh"
need_root
command -v wrk >/dev/null || fail "wrk is not installed (deploy/install-deps.sh --test)"
command -v tcpreplay >/dev/null || fail "tcpreplay is not installed (deploy/install-deps.sh --test)"

PPS=${LOAD_PPS:-5000}
SECONDS_REPLAY=10
veth_netns l
veth_up

# 10 s of frames at $PPS: 64 addresses talking to 4, TCP and UDP, mixed sizes.
{
	for i in $(seq 1 64); do
		echo "ip4 10.197.1.$i 10.197.0.$((i % 4 + 1)) 6 $((100 + i * 20)) count $((PPS * SECONDS_REPLAY / 128))"
		echo "ip4 10.197.0.$((i % 4 + 1)) 10.197.1.$i 17 $((1514 - i * 10)) count $((PPS * SECONDS_REPLAY / 128))"
	done
} >"$WORK/load.spec"
"$PCAPGEN" en10mb "$WORK/load.pcap" <"$WORK/load.spec"
FRAMES=$(((PPS * SECONDS_REPLAY / 128) * 128))

# replay NAME [wrk]: one agent, one replay; sets ALL (frames counted) and
# DROP (kernel drops).
replay() {
	local name=$1 port url
	port=$(free_port)
	start "agent-$name" "$PROMACCT" -i "$HOST_IF" -r 10.197.0.0/16:net=load \
		--web.listen-address "127.0.0.1:$port"
	url="http://127.0.0.1:$port/metrics"
	wait_http "$url"
	sleep 0.5
	if [ "${2:-}" = wrk ]; then
		wrk -c 64 -t 2 -d 10s --timeout 5s "$url" >"$WORK/wrk.txt" 2>&1 &
		local wrk_pid=$!
	fi
	ip netns exec "$NS" tcpreplay -q -i "$NS_IF" --pps "$PPS" "$WORK/load.pcap" \
		>"$WORK/tcpreplay-$name.txt" 2>&1 || fail "$name: tcpreplay failed"
	[ -n "${wrk_pid:-}" ] && wait "$wrk_pid"
	# counters settle once the last frame is read
	local page="$WORK/page-$name.txt" all drop prev=-1
	for _ in $(seq 1 50); do
		curl -fsS --max-time 5 "$url" >"$page"
		all=$(value_of "$page" "promacct_packet_size_bytes_all_count{interface=\"$HOST_IF\"}")
		[ "$all" = "$prev" ] && break
		prev=$all
		sleep 0.2
	done
	drop=$(value_of "$page" "promacct_pcap_dropped_packets_total{interface=\"$HOST_IF\"}")
	stop_agent "agent-$name"
	ALL=${all:-0}
	DROP=${drop:-0}
}

replay quiet
all0=$ALL drop0=$DROP
[ $((all0 + drop0)) -ge "$FRAMES" ] || fail "quiet: counted $all0 + dropped $drop0 < $FRAMES frames sent"
ok "replay alone: $FRAMES frames at $PPS/s, counted $all0, kernel drops $drop0"

replay loaded wrk
all1=$ALL drop1=$DROP
cat "$WORK/wrk.txt"
grep -q 'requests in' "$WORK/wrk.txt" || fail "wrk did not run"
! grep -q -E 'Socket errors|Non-2xx' "$WORK/wrk.txt" || fail "failed requests under load"
[ $((all1 + drop1)) -ge "$FRAMES" ] || fail "loaded: counted $all1 + dropped $drop1 < $FRAMES frames sent"
[ "$drop1" -le "$drop0" ] || fail "kernel drops under load: $drop1 (without load: $drop0)"
ok "replay under wrk -c 64 on /metrics: $(awk '/requests in/ { print $1 }' "$WORK/wrk.txt") requests, none failed; counted $all1, kernel drops $drop1 (alone: $drop0)"
