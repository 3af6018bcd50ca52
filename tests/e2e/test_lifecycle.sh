#!/usr/bin/env bash
# End-to-end: the agent's lifecycle as an operator sees it.
#  - A start-up that fails (port in use) has no graceful side effects: it
#    neither pushes nor DELETEs, so it cannot wipe the group of the agent
#    that is running (issue 13 item 2), with the real Pushgateway.
#  - --once with --push.delete-on-exit is a usage error.
#  - SIGTERM to exit is bounded by --push.timeout even when the gateway
#    hangs (issue 13 item 8, push side).
#  - One deadline for push and remote write together.
#  - A second SIGTERM during the shutdown exits at once.
#  - SIGHUP never ends the agent: it asks for a reload.
#  - A gateway URL with a query string keeps it after the group path (item 11).
#  - Two signals at once are one; --once abandons a hanging push on a signal;
#    SIGHUP during start-up is a reload (review findings 7, 10, 4).
. "$(dirname "$0")/lib.sh"
command -v prometheus-pushgateway >/dev/null || fail "prometheus-pushgateway not installed"
: "${STALL_SERVER:?STALL_SERVER must point to the stall_server tool}"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
GWPORT=$(free_port)
GW="http://127.0.0.1:$GWPORT"
start_pushgateway gw "$GWPORT"
wait_http "$GW/-/ready"

# The push_time_seconds of group dc=$1 on the gateway (empty: no group).
push_time() {
	curl -fsS "$GW/metrics" | awk -v g="dc=\"$1\"" 'index($0, g) && /^push_time_seconds/ { print $2 }'
}

# 1. A second agent that fails to start touches nothing on the gateway.
APORT=$(free_port)
start agentA "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$APORT" \
	--push.gateway "$GW" --push.grouping dc=dup --push.interval 1h --push.delete-on-exit
wait_http "http://127.0.0.1:$APORT/metrics"
for _ in $(seq 1 50); do [ -n "$(push_time dup)" ] && break; sleep 0.1; done
T_A=$(push_time dup)
[ -n "$T_A" ] || fail "agent A's group never reached the gateway"
rc=0
timeout 20 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$APORT" \
	--push.gateway "$GW" --push.grouping dc=dup --push.interval 1h --push.delete-on-exit \
	>"$WORK/agentB.out" 2>"$WORK/agentB.log" || rc=$?
[ "$rc" = 1 ] || fail "agent B on a used port exited $rc, expected 1"
grep -q "Address already in use" "$WORK/agentB.log" || fail "agent B does not say why it failed"
grep -q 'msg="deleted the pushed group"' "$WORK/agentB.log" && fail "agent B deleted the group"
[ "$(push_time dup)" = "$T_A" ] || fail "agent A's group was changed by agent B: '$T_A' -> '$(push_time dup)'"
ok "a start-up that fails neither pushes nor deletes: agent A's group is intact"
stop_agent agentA
[ -z "$(push_time dup)" ] || fail "agent A did not delete its group on exit"
ok "the agent that ran deletes its group on SIGTERM"

# 2. --once with --push.delete-on-exit: a usage error, nothing sent.
rc=0
"$PROMACCT" -R "$WORK/eth.pcap" --once --push.gateway "$GW" --push.grouping dc=once \
	--push.delete-on-exit >/dev/null 2>"$WORK/once.log" || rc=$?
[ "$rc" = 2 ] || fail "--once --push.delete-on-exit exited $rc, expected 2 (usage)"
grep -q -- "--push.delete-on-exit cannot be used with --once" "$WORK/once.log" ||
	fail "the usage error does not name the flags"
[ -z "$(push_time once)" ] || fail "--once with a usage error pushed"
ok "--once with --push.delete-on-exit is a usage error"

# 3. A gateway that hangs: SIGTERM to exit within --push.timeout (2s), even
#    with a push in flight and a final push and DELETE to do.
STALL_PORT=$(free_port)
start stall "$STALL_SERVER" "$STALL_PORT" "$WORK/stall.requests"
for _ in $(seq 1 50); do [ -s "$WORK/stall.log" ] && break; sleep 0.1; done
SPORT=$(free_port)
start hang "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$SPORT" \
	--push.gateway "http://127.0.0.1:$STALL_PORT" --push.timeout 2s --push.interval 100ms \
	--push.delete-on-exit
wait_http "http://127.0.0.1:$SPORT/metrics"
for _ in $(seq 1 50); do grep -q '^PUT ' "$WORK/stall.requests" 2>/dev/null && break; sleep 0.1; done
grep -q '^PUT ' "$WORK/stall.requests" || fail "no push reached the hanging gateway"
sleep 0.5 # the first push hangs in flight
t0=$(date +%s%N)
stop_agent hang
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "SIGTERM with a hanging gateway took $ms ms (push timeout 2s)"
grep -q 'deleted the pushed group' "$WORK/hang.log" && fail "a DELETE that got no answer was logged as done"
ok "SIGTERM with a hanging gateway: exit 0 in $ms ms (push timeout 2000 ms)"

# 4. SIGHUP asks for a reload and never ends the agent.
HPORT=$(free_port)
start hup "$PROMACCT" -R "$WORK/eth.pcap" --web.listen-address "127.0.0.1:$HPORT"
wait_http "http://127.0.0.1:$HPORT/metrics"
kill -HUP "$(cat "$WORK/hup.pid")"
kill -HUP "$(cat "$WORK/hup.pid")"
for _ in $(seq 1 50); do grep -q 'msg="reload requested"' "$WORK/hup.log" && break; sleep 0.1; done
grep -q 'msg="reload requested"' "$WORK/hup.log" || fail "SIGHUP not logged as a reload request"
curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$HPORT/metrics" || fail "the agent died on SIGHUP"
stop_agent hup
ok "SIGHUP: reload requested, the agent keeps running, SIGTERM still exits 0"

# 5. A gateway URL with a query string: the query stays after the group path.
"$PROMACCT" -R "$WORK/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW/?x=1" \
	--push.grouping dc=query 2>"$WORK/query.log" || fail "push to a gateway URL with a query failed"
[ -n "$(push_time query)" ] || fail "no group pushed through a URL with a query"
# (logs show the query as <query>: it may hold a token, issue 9)
grep -Eq 'metrics/job/promacct/dc/query/instance/[^" ?]*[?]<query>("| |$)' "$WORK/query.log" ||
	fail "the push URL does not keep the query after the group path"
rc=0
"$PROMACCT" -R "$WORK/eth.pcap" --once --push.gateway "$GW/#frag" 2>"$WORK/frag.log" || rc=$?
[ "$rc" != 0 ] || fail "a gateway URL with a fragment was accepted"
grep -q 'fragment' "$WORK/frag.log" || fail "a gateway URL with a fragment: no reason given"
ok "gateway URL with a query string: kept after the group path; a fragment is refused"

# 6. One deadline for every output: a pusher and a remote writer both facing
#    a receiver that hangs are done within the longer timeout (2 s) from the
#    signal, not one timeout after the other.
BPORT=$(free_port)
start both "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$BPORT" \
	--push.gateway "http://127.0.0.1:$STALL_PORT" --push.timeout 2s --push.delete-on-exit \
	--remote-write.url "http://127.0.0.1:$STALL_PORT/api/v1/write" --remote-write.timeout 2s
wait_http "http://127.0.0.1:$BPORT/metrics"
for _ in $(seq 1 50); do grep -q '^POST /api/v1/write' "$WORK/stall.requests" && break; sleep 0.1; done
grep -q '^POST /api/v1/write' "$WORK/stall.requests" || fail "no remote write reached the hanging receiver"
t0=$(date +%s%N)
stop_agent both
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] || fail "SIGTERM with push and remote write hanging took $ms ms (timeouts 2s)"
ok "push and remote write hanging: exit 0 in $ms ms (both timeouts 2000 ms)"

# 7. A second SIGTERM while the shutdown waits on a hanging gateway (10 s
#    timeout) ends the agent at once, with status 1 and a log line.
IPORT=$(free_port)
start impatient "$PROMACCT" -R "$WORK/eth.pcap" --web.listen-address "127.0.0.1:$IPORT" \
	--push.gateway "http://127.0.0.1:$STALL_PORT" --push.timeout 10s
wait_http "http://127.0.0.1:$IPORT/metrics"
pid=$(cat "$WORK/impatient.pid")
kill -TERM "$pid"
sleep 1 # an operator's second signal, not a repeat of the first
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] || fail "second SIGTERM: exit $rc, expected 1"
[ "$ms" -lt 3000 ] || fail "second SIGTERM: exit took $ms ms (push timeout 10 s)"
grep -q 'msg="second signal' "$WORK/impatient.log" || fail "second signal not logged"
ok "a second SIGTERM during the shutdown exits at once ($ms ms, status 1)"

# 8. Two signals at once are one request (review finding 7: timeout(1)
#    signals the process and its group, the second within microseconds was
#    taken for an operator's second signal and skipped the DELETE).
RPORT=$(free_port)
start twice "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$RPORT" \
	--push.gateway "$GW" --push.grouping dc=twice --push.interval 1h --push.delete-on-exit
wait_http "http://127.0.0.1:$RPORT/metrics"
for _ in $(seq 1 50); do [ -n "$(push_time twice)" ] && break; sleep 0.1; done
[ -n "$(push_time twice)" ] || fail "no push before the double signal"
pid=$(cat "$WORK/twice.pid")
kill -INT "$pid"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "two signals at once: exit $rc, expected 0"
grep -q 'second signal' "$WORK/twice.log" && fail "two signals at once taken as a second request"
[ -z "$(push_time twice)" ] || fail "two signals at once: the group was not deleted"
for i in 1 2 3; do
	rc=0
	timeout 1.5 "$PROMACCT" -R "$WORK/eth.pcap" --web.disable --push.gateway "$GW" \
		--push.grouping "dc=timeout$i" --push.interval 1s --push.delete-on-exit \
		2>"$WORK/timeout$i.log" || rc=$?
	[ "$rc" = 124 ] || fail "timeout run $i: status $rc, expected timeout's 124"
	grep -q 'second signal' "$WORK/timeout$i.log" && fail "timeout(1)'s signals taken as two"
	grep -q 'msg="deleted the pushed group"' "$WORK/timeout$i.log" || fail "timeout run $i: no DELETE"
	[ -z "$(push_time "timeout$i")" ] || fail "timeout run $i: the group is still there"
done
ok "two signals at once (INT+TERM, timeout(1)) are one shutdown: exit 0, group deleted"

# 9. --once: a signal during a push that hangs abandons it (review finding
#    10: it was neither logged nor acted on until the 30 s timeout).
"$PROMACCT" -R "$WORK/eth.pcap" --once --push.gateway "http://127.0.0.1:$STALL_PORT" \
	--push.timeout 30s 2>"$WORK/oncehang.log" &
pid=$!
for _ in $(seq 1 50); do grep -q 'promacct started' "$WORK/oncehang.log" && break; sleep 0.1; done
sleep 0.5
t0=$(date +%s%N)
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] || fail "--once interrupted during a push: exit $rc, expected 1"
[ "$ms" -lt 3000 ] || fail "--once interrupted during a push: exit took $ms ms (timeout 30 s)"
grep -q 'msg="shutting down" signal=SIGINT' "$WORK/oncehang.log" || fail "--once: the signal is not logged"
grep -q 'msg="interrupted while delivering' "$WORK/oncehang.log" || fail "--once: the abandoned push is not logged"
ok "--once: SIGINT during a hanging push abandons it ($ms ms, status 1, logged)"

# 9b. The same for remote write: a signal abandons the request in flight.
"$PROMACCT" -R "$WORK/eth.pcap" --once --remote-write.url "http://127.0.0.1:$STALL_PORT/api/v1/write" \
	--remote-write.timeout 30s 2>"$WORK/oncerw.log" &
pid=$!
for _ in $(seq 1 50); do grep -q 'promacct started' "$WORK/oncerw.log" && break; sleep 0.1; done
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] || fail "--once interrupted during a remote write: exit $rc, expected 1"
[ "$ms" -lt 3000 ] || fail "--once interrupted during a remote write: exit took $ms ms (timeout 30 s)"
grep -q 'msg="shutting down" signal=SIGTERM' "$WORK/oncerw.log" || fail "--once rw: the signal is not logged"
ok "--once: SIGTERM during a hanging remote write abandons it ($ms ms, status 1, logged)"

# 10. SIGHUP while the agent is still starting (a large config file) asks
#     for a reload too (review finding 4: it killed the agent, exit 129).
awk 'BEGIN { print "ranges:"; for (i = 0; i < 200000; i++)
	printf "  - prefix: 10.%d.%d.%d/32\n    labels: {c: c%d}\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256, i }' \
	>"$WORK/big.yml"
UPORT=$(free_port)
start early "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/big.yml" \
	--web.listen-address "127.0.0.1:$UPORT"
pid=$(cat "$WORK/early.pid")
# Signal while the config file is being read (the reader holds it open),
# not at a fixed time: a loaded machine may not even have reached main().
reading=0
for _ in $(seq 1 3000); do
	if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'big\.yml'; then
		reading=1
		break
	fi
	sleep 0.01
done
[ "$reading" = 1 ] || fail "never saw the config file being read"
kill -HUP "$pid"
wait_http "http://127.0.0.1:$UPORT/metrics" 60
kill -0 "$pid" 2>/dev/null || fail "SIGHUP during start-up ended the agent"
for _ in $(seq 1 50); do grep -q 'msg="reload requested"' "$WORK/early.log" && break; sleep 0.1; done
grep -q 'msg="reload requested"' "$WORK/early.log" || fail "SIGHUP during start-up not taken as a reload"
stop_agent early
ok "SIGHUP during start-up: the agent starts and takes it as a reload"
