#!/usr/bin/env bash
# End-to-end: --address.idle-timeout on live capture (a veth pair whose other
# end sits in a network namespace of this test). Datagrams from the
# namespace make an address's series; once it is idle for the timeout the
# series leaves the page within the timeout + 1 s, its place in the caps is
# free, the next Pushgateway PUT leaves it out, remote write carries its
# stale markers, and when the address sends
# again its series starts from zero (after the stale marker on the wire).
. "$(dirname "$0")/lib.sh"
need_root
: "${RW_RECEIVER:?}"

NET=10.197.$(($$ % 250))
veth_netns x
veth_up "$NET" # no IPv6 on the pair: no router solicitations or MLD keys

RP=$(free_port)
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
GP=$(free_port)
start_pushgateway gw "$GP"
GW="http://127.0.0.1:$GP"
wait_http "$GW/metrics"
port=$(free_port)
start agent "$PROMACCT" -i "$HOST_IF" -r "$NET.0/24:net=expiry" --web.listen-address "127.0.0.1:$port" \
	--address.idle-timeout 2s --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 200ms --push.gateway "$GW" --push.interval 200ms --log.level debug
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
sleep 0.3
series='promacct_packet_size_bytes_ipv4_tx_count{interface="'$HOST_IF'",ip="'$NET.2'",protocol="udp",net="expiry"}'

veth_send_udp 20 472 9
t_last=$(date +%s.%N)
for _ in $(seq 1 20); do
	curl -fsS "$url" >"$WORK/before.out"
	[ "$(value_of "$WORK/before.out" "$series")" = 20 ] && break
	sleep 0.05
done
[ "$(value_of "$WORK/before.out" "$series")" = 20 ] ||
	fail "counted $(value_of "$WORK/before.out" "$series") of 20 datagrams"
[ "$(value_of "$WORK/before.out" promacct_tracked_addresses)" = 2 ] || fail "tracked addresses before"
for _ in $(seq 1 20); do
	curl -fsS "$GW/metrics" >"$WORK/before_gw.out"
	grep -q "ip=\"$NET.2\"" "$WORK/before_gw.out" && break
	sleep 0.1
done

# Every series of both addresses (udp, and the icmp port unreachable the
# host answers with) gone within the timeout + 1 s of the last packet, not
# before the timeout.
gone=""
while :; do
	curl -fsS "$url" >"$WORK/poll.out"
	now=$(date +%s.%N)
	if ! grep -q "ip=\"$NET." "$WORK/poll.out"; then
		gone=$now
		break
	fi
	awk -v a="$t_last" -v b="$now" 'BEGIN { exit !(b - a > 4) }' && break
	sleep 0.05
done
[ -n "$gone" ] || fail "the idle key was still on the page 4 s after its last packet"
after=$(awk -v a="$t_last" -v b="$gone" 'BEGIN { printf "%.2f", b - a }')
awk -v d="$after" 'BEGIN { exit !(d >= 1.95 && d <= 3.0) }' ||
	fail "the idle key left the page ${after} s after its last packet (want 2 to 3 s)"
[ "$(value_of "$WORK/poll.out" "promacct_tracked_keys{interface=\"$HOST_IF\"}")" = 0 ] ||
	fail "tracked keys after expiry: $(value_of "$WORK/poll.out" "promacct_tracked_keys{interface=\"$HOST_IF\"}")"
expired=$(value_of "$WORK/poll.out" "promacct_expired_keys_total{interface=\"$HOST_IF\"}")
[ "${expired:-0}" -ge 2 ] || fail "promacct_expired_keys_total is '$expired'"
[ "$(value_of "$WORK/poll.out" promacct_tracked_addresses)" = 0 ] ||
	fail "the expired addresses still count against --max-addresses"
promtool check metrics <"$WORK/poll.out" || fail "promtool on the page after expiry"
ok "idle key left the page ${after} s after its last packet (timeout 2 s), caps freed"

# The Pushgateway: the key was in a PUT before, it is in none after (a PUT
# replaces the whole group).
grep -q "ip=\"$NET.2\"" "$WORK/before_gw.out" || fail "the key never reached the Pushgateway"
for _ in $(seq 1 20); do
	curl -fsS "$GW/metrics" >"$WORK/gw.out"
	grep -q "ip=\"$NET.2\"" "$WORK/gw.out" || break
	sleep 0.1
done
grep -q "ip=\"$NET.2\"" "$WORK/gw.out" && fail "the expired key is still on the Pushgateway 2 s after it ended"
ok "the next Pushgateway PUT left the expired key out"

# Remote write: stale markers for every sample series of the key.
S="__name__=promacct_packet_size_bytes_ipv4_tx_count,instance=$(hostname),interface=$HOST_IF,ip=$NET.2,job=promacct,net=expiry,protocol=udp"
for _ in $(seq 1 30); do
	awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
		"$WORK/recv.events" && break
	sleep 0.1
done
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
	"$WORK/recv.events" || fail "no stale marker for the expired key over remote write"
for le in 64 128 256 512 1024 2048 +Inf; do
	B="__name__=promacct_packet_size_bytes_ipv4_tx_bucket,instance=$(hostname),interface=$HOST_IF,ip=$NET.2,job=promacct,le=$le,net=expiry,protocol=udp"
	awk -F'\t' -v s="$B" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
		"$WORK/recv.events" || fail "no stale marker for bucket le=$le"
done
ok "remote write carried the stale markers of the expired key"

# It comes back: from zero; on the wire its new samples follow the marker.
veth_send_udp 5 472 9
for _ in $(seq 1 30); do
	curl -fsS "$url" >"$WORK/back.out"
	[ "$(value_of "$WORK/back.out" "$series")" = 5 ] && break
	sleep 0.1
done
[ "$(value_of "$WORK/back.out" "$series")" = 5 ] ||
	fail "the returning address shows $(value_of "$WORK/back.out" "$series") datagrams, want 5 (from zero)"
for _ in $(seq 1 30); do
	awk -F'\t' -v s="$S" '$1 == "S" && $2 == s { last = $4 } END { exit !(last == 5) }' \
		"$WORK/recv.events" && break
	sleep 0.1
done
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s {
		if ($4 == "stale") { stale_ts = $3; after = 0 } else if (stale_ts && $3 > stale_ts) after = $4
		if ($3 <= prev) bad = 1; prev = $3
	} END { exit !(stale_ts && after == 5 && !bad) }' "$WORK/recv.events" ||
	fail "remote write: no restart from zero after the stale marker (or timestamps not increasing)"
grep -q 'R 400' "$WORK/recv.events" && fail "the receiver rejected a request"
stop_agent agent
ok "the returning address starts from zero, after its stale marker on the wire"
