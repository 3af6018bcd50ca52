#!/usr/bin/env bash
# End-to-end: live capture on a veth pair whose other end sits in a network
# namespace of this test. Known UDP datagrams are sent from the namespace;
# the scrape page must count exactly them, with one and with two fanout
# capture threads, and report no kernel drops.
. "$(dirname "$0")/lib.sh"
need_root

veth_netns a
veth_up 10.199.0

run_case() { # THREADS
	local threads=$1 port
	port=$(free_port)
	start "agent$threads" "$PROMACCT" -i "$HOST_IF" -r 10.199.0.0/24:net=test \
		--capture-threads "$threads" --web.listen-address "127.0.0.1:$port"
	local url="http://127.0.0.1:$port/metrics"
	wait_http "$url"
	sleep 0.3 # capture sockets are open before the page is; let them settle
	veth_send_udp 200 472 9 # 20 + 8 + 472 = 500 bytes of IP
	veth_send_udp 50 1172 10 # 1200 bytes of IP
	local series='promacct_packet_size_bytes_ipv4_tx_count{interface="'$HOST_IF'",ip="10.199.0.2",protocol="udp",net="test"}'
	local sum_series='promacct_packet_size_bytes_ipv4_tx_sum{interface="'$HOST_IF'",ip="10.199.0.2",protocol="udp",net="test"}'
	local le='promacct_packet_size_bytes_ipv4_tx_bucket{interface="'$HOST_IF'",ip="10.199.0.2",protocol="udp",net="test",le="512"}'
	for _ in $(seq 1 50); do
		curl -fsS "$url" >"$WORK/live$threads.out"
		[ "$(value_of "$WORK/live$threads.out" "$series")" = 250 ] && break
		sleep 0.1
	done
	[ "$(value_of "$WORK/live$threads.out" "$series")" = 250 ] ||
		fail "threads=$threads: counted $(value_of "$WORK/live$threads.out" "$series") of 250 datagrams"
	[ "$(value_of "$WORK/live$threads.out" "$sum_series")" = $((200 * 500 + 50 * 1200)) ] ||
		fail "threads=$threads: wrong byte sum"
	[ "$(value_of "$WORK/live$threads.out" "$le")" = 200 ] || fail "threads=$threads: buckets"
	[ "$(value_of "$WORK/live$threads.out" "promacct_pcap_dropped_packets_total{interface=\"$HOST_IF\"}")" = 0 ] ||
		fail "threads=$threads: kernel drops"
	# Both addresses were seen by every fanout thread (each datagram is a
	# new flow): still two (interface, address) pairs against the cap.
	[ "$(value_of "$WORK/live$threads.out" promacct_tracked_addresses)" = 2 ] ||
		fail "threads=$threads: $(value_of "$WORK/live$threads.out" promacct_tracked_addresses) tracked addresses, want 2"
	[ "$(value_of "$WORK/live$threads.out" "promacct_interface_up{interface=\"$HOST_IF\"}")" = 1 ] ||
		fail "threads=$threads: interface_up"
	promtool check metrics <"$WORK/live$threads.out" || fail "promtool on the live page"
	stop_agent "agent$threads"
	ok "live capture, $threads thread(s): 250 datagrams, 160000 bytes, no drops"
}

run_case 1
run_case 2

# The interface disappears while the agent runs: the agent keeps running
# (reopening it: test_interface_back.sh), the scrape page drops the
# interface's series, and remote write ends them with stale markers.
: "${RW_RECEIVER:?}"
RP=$(free_port)
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
port=$(free_port)
start agent_gone "$PROMACCT" -i "$HOST_IF" -r 10.199.0.0/24 --web.listen-address "127.0.0.1:$port" \
	--remote-write.url "http://127.0.0.1:$RP/push" --remote-write.interval 200ms \
	--interface.reopen-interval 200ms
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
sleep 0.3
veth_send_udp 10 100 9
sleep 0.5
curl -fsS "$url" >"$WORK/before.out"
[ -n "$(value_of "$WORK/before.out" "promacct_packet_size_bytes_all_count{interface=\"$HOST_IF\"}")" ] ||
	fail "interface series missing before removal"
ip link del "$HOST_IF"
for _ in $(seq 1 50); do
	grep -q 'msg="interface gone, reopening it until it is back"' "$WORK/agent_gone.log" && break
	sleep 0.1
done
grep -q 'msg="interface gone, reopening it until it is back"' "$WORK/agent_gone.log" ||
	fail "interface removal not noticed"
sleep 0.6
curl -fsS "$url" >"$WORK/after.out" || fail "scrape page down after the interface went away"
grep -v '^promacct_interface_up{' "$WORK/after.out" | grep -q "interface=\"$HOST_IF\"" &&
	fail "series of the removed interface still exported"
[ "$(value_of "$WORK/after.out" "promacct_interface_up{interface=\"$HOST_IF\"}")" = 0 ] ||
	fail "interface_up of the removed interface is not 0"
[ "$(value_of "$WORK/after.out" promacct_tracked_addresses)" = 0 ] ||
	fail "the removed interface's addresses still count against the cap"
S="__name__=promacct_packet_size_bytes_all_count,instance=$(hostname),interface=$HOST_IF,job=promacct"
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
	"$WORK/recv.events" || fail "no stale marker for the removed interface"
stop_agent agent_gone
ok "interface removed: series dropped from the page, stale markers sent, agent still up"
