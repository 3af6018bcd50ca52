#!/usr/bin/env bash
# End-to-end (issue 9, interfaces that come back): a captured veth is
# deleted and created again with the same name. The agent reopens it every
# --interface.reopen-interval, logs one line when it goes and one when it
# returns, promacct_interface_up goes 1 -> 0 -> 1, and its series continue
# (counts carry on from where they were). With --interface.reopen-interval
# 0 and no capture source left the agent exits 1. With --interface.wait an
# interface missing at start is waited for.
. "$(dirname "$0")/lib.sh"
need_root

# A subnet of its own per run (the host side sits in the shared root
# namespace, where parallel runs must not share addresses).
NET=10.$((100 + $$ % 100)).198
veth_netns b

SERIES="promacct_packet_size_bytes_ipv4_tx_count{interface=\"$HOST_IF\",ip=\"$NET.2\",protocol=\"udp\"}"
UP='promacct_interface_up{interface="'$HOST_IF'"}'

veth_up $NET
port=$(free_port)
start agent "$PROMACCT" -i "$HOST_IF" -r $NET.0/24 --capture-threads 2 \
	--web.listen-address "127.0.0.1:$port" --interface.reopen-interval 200ms
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
sleep 0.3
veth_send_udp 20 100
wait_value "$url" "$SERIES" 20
wait_value "$url" "$UP" 1

ip link del "$HOST_IF"
wait_value "$url" "$UP" 0
grep -q "^$SERIES " "$WORK/page.out" && fail "series of the vanished interface still exported"
sleep 1 # five reopen attempts while it is missing
veth_up $NET
wait_value "$url" "$UP" 1
sleep 0.3
veth_send_udp 30 100
# The series continue: 20 before, 30 after.
wait_value "$url" "$SERIES" 50
wait_value "$url" promacct_tracked_addresses 2
promtool check metrics <"$WORK/page.out" || fail "promtool on the page"
[ "$(grep -c 'msg="interface gone, reopening it until it is back"' "$WORK/agent.log")" = 1 ] ||
	fail "want one line when the interface goes"
[ "$(grep -c 'msg="interface back, capturing again"' "$WORK/agent.log")" = 1 ] ||
	fail "want one line when the interface returns"
stop_agent agent
ok "interface deleted and re-created: reopened, one log line each way, series continue"

# Reopening off: the interface's series end, and with no capture source
# left the agent exits 1 (a supervisor restarts it).
port=$(free_port)
start agent0 "$PROMACCT" -i "$HOST_IF" --web.listen-address "127.0.0.1:$port" \
	--interface.reopen-interval 0
wait_http "http://127.0.0.1:$port/metrics"
ip link del "$HOST_IF"
pid=$(cat "$WORK/agent0.pid")
rc=0
timeout 10 tail --pid="$pid" -f /dev/null || fail "agent still running with no capture source"
wait "$pid" || rc=$?
[ "$rc" = 1 ] || fail "no capture source left: exit status $rc, want 1"
grep -q 'no capture source is left' "$WORK/agent0.log" || fail "exit not explained in the log"
ok "reopening off: no capture source left, exit 1"

# --interface.wait: missing at start is not an error; captured once there.
port=$(free_port)
start agentw "$PROMACCT" -i "$HOST_IF" -r $NET.0/24 --web.listen-address "127.0.0.1:$port" \
	--interface.wait --interface.reopen-interval 200ms
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
wait_value "$url" "$UP" 0
veth_up $NET
wait_value "$url" "$UP" 1
sleep 0.3
veth_send_udp 5 100
wait_value "$url" "$SERIES" 5
stop_agent agentw
ok "--interface.wait: waited for, then captured"
