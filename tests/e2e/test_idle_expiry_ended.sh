#!/usr/bin/env bash
# End-to-end: --address.idle-timeout for sources whose capture ended. The
# keys of a capture file read to its end while the agent runs on (no
# --once), and those of a captured interface that was deleted (while its
# thread waits to reopen it, and with reopening off), end within the
# timeout + 1 s of their last packet as live keys do: off the page, stale
# markers over remote write, absent from the next Pushgateway PUT, their
# place in the caps free, counted in promacct_expired_keys_total. A
# SIGTERM still ends the agent at once.
. "$(dirname "$0")/lib.sh"
need_root
: "${RW_RECEIVER:?}"

# seconds since $1 (a `date +%s.%N`)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
# until_gone URL TEXT SECONDS: polls the page until no line holds TEXT;
# prints the time it went (date +%s.%N), nothing if it stayed.
until_gone() {
	local end
	end=$(awk -v s="$3" -v n="$(date +%s.%N)" 'BEGIN { printf "%.3f", n + s }')
	while :; do
		curl -fsS "$1" >"$WORK/poll.out"
		if ! grep -qF "$2" "$WORK/poll.out"; then
			date +%s.%N
			return 0
		fi
		awk -v e="$end" -v n="$(date +%s.%N)" 'BEGIN { exit !(n > e) }' && return 0
		sleep 0.05
	done
}
# within D LO HI: LO <= D <= HI
within() { awk -v d="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(d >= lo && d <= hi) }'; }
# stop_timed NAME: stop_agent; TOOK is how long the SIGTERM took
stop_timed() {
	local t0
	t0=$(date +%s.%N)
	stop_agent "$1"
	TOOK=$(since "$t0")
}

# ---- 1. a capture file read to its end, the agent running on ----------------
printf 'ip4 10.0.0.1 10.0.0.2 6 100 count 5\n' | "$PCAPGEN" en10mb "$WORK/idle.pcap"
RP=$(free_port)
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
GP=$(free_port)
start_pushgateway gw "$GP"
GW="http://127.0.0.1:$GP"
wait_http "$GW/metrics"
port=$(free_port)
url="http://127.0.0.1:$port/metrics"
series='promacct_packet_size_bytes_ipv4_tx_count{interface="idle.pcap",ip="10.0.0.1",protocol="tcp"}'
t_start=$(date +%s.%N)
start agent "$PROMACCT" -R "$WORK/idle.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$port" \
	--address.idle-timeout 1s --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 200ms --push.gateway "$GW" --push.interval 200ms
wait_http "$url"
curl -fsS "$url" >"$WORK/first.out"
[ "$(value_of "$WORK/first.out" "$series")" = 5 ] ||
	fail "file's key not counted: '$(value_of "$WORK/first.out" "$series")'"
for _ in $(seq 1 20); do
	curl -fsS "$GW/metrics" >"$WORK/gw_before.out"
	grep -q 'ip="10.0.0.1"' "$WORK/gw_before.out" && break
	sleep 0.1
done
grep -q 'ip="10.0.0.1"' "$WORK/gw_before.out" || fail "the file's key never reached the Pushgateway"
gone=$(until_gone "$url" 'ip="10.0.0.' 4)
[ -n "$gone" ] || fail "the keys of the read file were still on the page 4 s later (before: never ended)"
after=$(awk -v a="$t_start" -v b="$gone" 'BEGIN { printf "%.2f", b - a }')
# the file ended after t_start and before the first page
within "$after" 0.95 4 || fail "the keys left ${after} s after the agent started (timeout 1 s)"
expired=$(value_of "$WORK/poll.out" 'promacct_expired_keys_total{interface="idle.pcap"}')
[ "${expired:-0}" = 2 ] || fail "promacct_expired_keys_total{interface=\"idle.pcap\"} is '$expired', want 2"
[ "$(value_of "$WORK/poll.out" 'promacct_tracked_keys{interface="idle.pcap"}')" = 0 ] ||
	fail "tracked keys of the read file after expiry"
[ "$(value_of "$WORK/poll.out" promacct_tracked_addresses)" = 0 ] ||
	fail "the expired addresses still count against --max-addresses"
[ "$(value_of "$WORK/poll.out" 'promacct_packet_size_bytes_all_count{interface="idle.pcap"}')" = 5 ] ||
	fail "the file's interface histogram changed"
ok "the read file's keys left the page ${after} s after the agent started (timeout 1 s), counted, caps freed"

for _ in $(seq 1 20); do
	curl -fsS "$GW/metrics" >"$WORK/gw.out"
	grep -q 'ip="10.0.0.1"' "$WORK/gw.out" || break
	sleep 0.1
done
grep -q 'ip="10.0.0.1"' "$WORK/gw.out" && fail "the expired key is still on the Pushgateway 2 s after it ended"
S="__name__=promacct_packet_size_bytes_ipv4_tx_count,instance=$(hostname),interface=idle.pcap,ip=10.0.0.1,job=promacct,protocol=tcp"
for _ in $(seq 1 30); do
	awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
		"$WORK/recv.events" && break
	sleep 0.1
done
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
	"$WORK/recv.events" || fail "no stale marker for the read file's expired key over remote write"
grep -q 'R 400' "$WORK/recv.events" && fail "the receiver rejected a request"
stop_timed agent
within "$TOOK" 0 1.5 || fail "SIGTERM took ${TOOK} s"
ok "absent from the next PUT, stale markers over remote write; SIGTERM took ${TOOK} s"
stop gw
stop recv

# ---- 2. a captured interface deleted, its thread waiting to reopen it --------
NET=10.$((100 + $$ % 100)).197
veth_netns g
veth_up "$NET"
cat >"$WORK/ranges.yml" <<EOF
ranges:
  - prefix: $NET.0/24
    labels: {net: gone}
    max_addresses: 10
EOF
HELD='promacct_range_tracked_keys{net="gone"}'
UP='promacct_interface_up{interface="'$HOST_IF'"}'
series='promacct_packet_size_bytes_ipv4_tx_count{interface="'$HOST_IF'",ip="'$NET.2'",protocol="udp",net="gone"}'
port=$(free_port)
url="http://127.0.0.1:$port/metrics"
start agent2 "$PROMACCT" -i "$HOST_IF" --config.file "$WORK/ranges.yml" \
	--web.listen-address "127.0.0.1:$port" --address.idle-timeout 1s \
	--interface.reopen-interval 200ms
wait_http "$url"
sleep 0.3
veth_send_udp 20 100
t_last=$(date +%s.%N)
wait_value "$url" "$series" 20
ip link del "$HOST_IF"
wait_value "$url" "$UP" 0
# Its keys (NET.2 and the ICMP answers of NET.1) leave the range's cap
# when idle: before, a gone interface kept them until it came back.
for _ in $(seq 1 60); do
	curl -fsS "$url" >"$WORK/page.out"
	[ "$(value_of "$WORK/page.out" "$HELD")" = 0 ] && break
	sleep 0.05
done
d=$(since "$t_last")
[ "$(value_of "$WORK/page.out" "$HELD")" = 0 ] ||
	fail "the gone interface's keys still hold $(value_of "$WORK/page.out" "$HELD") places in the range's cap ${d} s after their last packet"
within "$d" 0.95 2.0 || fail "the gone interface's keys ended ${d} s after their last packet (timeout 1 s)"
ok "the keys of a deleted interface (waiting to reopen it) ended ${d} s after their last packet"
# Back: the ended keys stay ended (before: they came back with their
# counts), the expiry is counted, an address that sends starts from zero.
veth_up "$NET"
wait_value "$url" "$UP" 1
grep -q "ip=\"$NET." "$WORK/page.out" && fail "the expired keys came back with the interface"
expired=$(value_of "$WORK/page.out" "promacct_expired_keys_total{interface=\"$HOST_IF\"}")
[ "${expired:-0}" -ge 2 ] || fail "promacct_expired_keys_total is '$expired' after the interface came back"
sleep 0.3
veth_send_udp 3 100
wait_value "$url" "$series" 3
stop_agent agent2
ok "back, the interface has none of its expired keys; a returning address starts from zero"

# ---- 3. reopening off: the interface's thread ends its keys, then waits -------
# (a capture file keeps the agent running: it is not the last source)
port=$(free_port)
url="http://127.0.0.1:$port/metrics"
start agent3 "$PROMACCT" -i "$HOST_IF" -R "$WORK/idle.pcap" --config.file "$WORK/ranges.yml" \
	--web.listen-address "127.0.0.1:$port" --address.idle-timeout 1s \
	--interface.reopen-interval 0
wait_http "$url"
sleep 0.3
veth_send_udp 20 100
t_last=$(date +%s.%N)
wait_value "$url" "$series" 20
ip link del "$HOST_IF"
for _ in $(seq 1 60); do
	curl -fsS "$url" >"$WORK/page.out"
	[ "$(value_of "$WORK/page.out" "$HELD")" = 0 ] && break
	sleep 0.05
done
d=$(since "$t_last")
[ "$(value_of "$WORK/page.out" "$HELD")" = 0 ] ||
	fail "reopening off: the keys still hold the range's cap ${d} s after their last packet"
within "$d" 0.95 2.0 || fail "reopening off: the keys ended ${d} s after their last packet (timeout 1 s)"
kill -0 "$(cat "$WORK/agent3.pid")" || fail "the agent exited with a capture file left"
stop_timed agent3
within "$TOOK" 0 1.5 || fail "SIGTERM took ${TOOK} s"
ok "reopening off: the keys ended ${d} s after their last packet; SIGTERM took ${TOOK} s"
