#!/usr/bin/env bash
# End-to-end: the on-disk remote-write queue (--remote-write.queue-dir,
# issue 11). The receiver is down while the agent runs, the agent is killed
# with SIGKILL, started again, and only then the receiver comes up: it gets
# the snapshots from before the kill, then the new ones, each sample once,
# per-series timestamps strictly increasing. A torn tail is skipped and
# counted; a second agent on the same directory is refused; the bound holds
# on disk. The same SIGKILL-and-restart into the real Prometheus.
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}"
: "${STALL_SERVER:?}"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
Q="$WORK/queue"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
agent() { # NAME [FLAGS...]: an agent writing to the receiver through the disk queue
	local name=$1
	shift
	start "$name" "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
		--remote-write.queue-dir "$Q" --remote-write.interval 200ms --remote-write.max-backoff 200ms \
		--remote-write.timeout 2s --web.disable "$@"
}

# 1. Receiver down; the agent queues on disk for 2 s, then SIGKILL. Its
#    debug log names every snapshot it queued completely.
agent a1 --log.level debug
sleep 2
t_kill=$(($(date +%s%N) / 1000000))
kill -9 "$(cat "$WORK/a1.pid")"
wait "$(cat "$WORK/a1.pid")" 2>/dev/null || true
ls "$Q"/*/*.seg >/dev/null || fail "nothing queued on disk"

# 2. A second agent on the same directory is refused while one runs.
agent a2
sleep 0.5
rc=0
timeout 20 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
	--remote-write.queue-dir "$Q" --web.disable 2>"$WORK/a3.log" || rc=$?
[ "$rc" = 1 ] || fail "a second agent on the queue directory exited $rc, expected 1"
grep -q 'in use by another agent' "$WORK/a3.log" || fail "the refusal does not say why"
ok "a second agent on the same queue directory is refused"
grep -q 'msg="remote-write queue on disk".*requests=[1-9]' "$WORK/a2.log" ||
	fail "the restarted agent did not find the queue: $(grep queue "$WORK/a2.log")"

# 3. The receiver comes up: the whole window arrives, before the kill too.
sleep 1
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
for _ in $(seq 1 100); do
	grep -q '^R 200' "$WORK/recv.events" 2>/dev/null && break
	sleep 0.1
done
sleep 2
stop_agent a2
stop recv
E="$WORK/recv.events"
! grep '^V ' "$E" || fail "wire-format violations"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$E" || fail "timestamps not strictly increasing (or a sample sent twice)"
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 != "stale" { print $3 }' "$E" >"$WORK/ts"
sed -n 's/.*msg="remote-write snapshot queued" ts_ms=\([0-9]*\) stale=0 .*complete=1.*/\1/p' \
	"$WORK/a1.log" >"$WORK/queued-before-kill"
before=$(wc -l <"$WORK/queued-before-kill")
[ "$before" -ge 3 ] || fail "the first agent queued only $before snapshots"
missing=$(grep -vxF -f "$WORK/ts" "$WORK/queued-before-kill" || true)
[ -z "$missing" ] || fail "snapshots queued before the kill never arrived: $missing"
after=$(awk -v k="$t_kill" '$1 >= k' "$WORK/ts" | wc -l)
[ "$after" -ge 3 ] || fail "only $after snapshots from after the restart arrived"
ok "SIGKILL with the receiver down: all $before snapshots queued before the kill and $after after arrive, each once, in order"

# 4. Everything was accepted: the queue is empty on disk afterwards.
n=$(find "$Q" -name '*.seg' -exec cat {} + | wc -c)
[ "$n" = 0 ] || fail "$n bytes left on disk after everything was accepted"
ok "accepted requests leave the disk"

# 5. A torn tail (a crash in mid-write) is skipped and counted.
agent a4
sleep 1
kill -9 "$(cat "$WORK/a4.pid")"
wait "$(cat "$WORK/a4.pid")" 2>/dev/null || true
seg=$(find "$Q" -name '*.seg' | sort | tail -n1)
printf 'PRWQ\001\002\003' >>"$seg"
agent a5
sleep 1
grep -q 'msg="remote-write queue on disk".*corrupt_records=1' "$WORK/a5.log" ||
	fail "the torn tail was not counted: $(grep queue "$WORK/a5.log")"
stop_agent a5
ok "a torn tail is skipped and counted"

# 6. The bound holds on disk, exactly: the files of the endpoint's queue
#    directory (segments with their record headers, done lists, format)
#    never take more than --remote-write.queue-max-bytes. Measured with the
#    agent stopped (SIGSTOP), so no file changes while it is summed.
rm -rf "$Q"
agent a6 --remote-write.queue-max-bytes 64K --remote-write.interval 100ms
pid=$(cat "$WORK/a6.pid")
disk_bytes() { find "$Q" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
max=0 samples=0 after_full=0
for _ in $(seq 1 300); do
	kill -STOP "$pid"
	total=$(disk_bytes || true)
	kill -CONT "$pid" # before anything can fail: a stopped agent never ends
	samples=$((samples + 1))
	[ "$total" -gt "$max" ] && max=$total
	[ "$total" -le 65536 ] || fail "$total bytes on disk with a 64K bound (sample $samples)"
	if grep -q 'msg="remote-write queue full' "$WORK/a6.log"; then
		after_full=$((after_full + 1))
		[ "$after_full" -ge 40 ] && break
	fi
	sleep 0.05
done
[ "$after_full" -ge 40 ] || fail "no drop at the bound"
stop_agent a6
[ "$max" -gt $((65536 / 2)) ] || fail "the queue never filled: at most $max bytes on disk"
ok "disk queue bounded: at most $max bytes on disk with a 64K bound ($samples samples, $after_full while dropping)"

# 6b. A smaller bound at the next start: the oldest requests are dropped
#     until the queue fits, logged with what was dropped and counted.
rm -rf "$Q"
agent a7 --remote-write.interval 100ms
for _ in $(seq 1 150); do
	[ "$(disk_bytes)" -gt 150000 ] && break
	sleep 0.1
done
kill -9 "$(cat "$WORK/a7.pid")"
wait "$(cat "$WORK/a7.pid")" 2>/dev/null || true
found=$(disk_bytes)
[ "$found" -gt 150000 ] || fail "only $found bytes queued"
WL=$(free_port)
start a8 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
	--remote-write.queue-dir "$Q" --remote-write.queue-max-bytes 64K --remote-write.interval 10s \
	--remote-write.timeout 1s --web.listen-address "127.0.0.1:$WL"
wait_http "http://127.0.0.1:$WL/metrics"
grep -q 'msg="remote-write queue on disk over --remote-write.queue-max-bytes: the oldest requests dropped".*dropped_requests=[1-9].*bytes_found=[0-9]*.*max_bytes=65536' \
	"$WORK/a8.log" || fail "the trim to the smaller bound was not logged: $(grep queue "$WORK/a8.log")"
curl -fsS "http://127.0.0.1:$WL/metrics" >"$WORK/m8"
dropped=$(awk '/^promacct_remote_write_samples_total\{.*result="dropped"/ { print $2 }' "$WORK/m8")
[ "${dropped:-0}" != 0 ] || fail "the requests dropped at start-up are not counted"
now=$(disk_bytes)
gauge=$(awk '/^promacct_remote_write_disk_bytes\{/ { print $2 }' "$WORK/m8")
stop_agent a8
[ "$now" -le 65536 ] || fail "$now bytes on disk after a restart with a 64K bound"
# the segment where the cut fell was compacted: its file shrank with it
[ "$gauge" = "$now" ] || fail "promacct_remote_write_disk_bytes $gauge, the files take $now"
[ "$now" -ge 32768 ] || fail "only $now bytes kept after a restart with a 64K bound"
ok "a smaller bound at restart: $found bytes trimmed to $now, $dropped samples counted as dropped, logged"

# 7. The same with the real Prometheus as the receiver: down while the first
#    agent runs and is killed, up after the restart; it holds every snapshot
#    queued before the kill.
rm -rf "$Q"
PPORT=$(free_port)
URL="http://127.0.0.1:$PPORT/api/v1/write"
agent p1 --log.level debug
sleep 2
kill -9 "$(cat "$WORK/p1.pid")"
wait "$(cat "$WORK/p1.pid")" 2>/dev/null || true
agent p2
start_prometheus prom "$PPORT"
wait_http "http://127.0.0.1:$PPORT/-/ready" 60
sed -n 's/.*msg="remote-write snapshot queued" ts_ms=\([0-9]*\) stale=0 .*complete=1.*/\1/p' \
	"$WORK/p1.log" >"$WORK/p-queued"
Sel='promacct_packet_size_bytes_all_count{interface="eth.pcap"}[10m]'
for _ in $(seq 1 100); do
	curl -fsS --get "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$Sel" |
		jq -r '.data.result[0].values[]?[0] | . * 1000 | round' >"$WORK/p-ts" || true
	[ -z "$(grep -vxF -f "$WORK/p-ts" "$WORK/p-queued" || true)" ] && break
	sleep 0.2
done
missing=$(grep -vxF -f "$WORK/p-ts" "$WORK/p-queued" || true)
[ -z "$missing" ] || fail "Prometheus lacks snapshots queued before the kill: $missing"
stop_agent p2
ok "Prometheus holds all $(wc -l <"$WORK/p-queued") snapshots queued before the SIGKILL ($(wc -l <"$WORK/p-ts") in all)"

# 8. The queue of an endpoint no longer configured is left alone, and said
#    so; the new URL gets its own directory.
old=$(ls "$Q")
URL="http://127.0.0.1:$(free_port)/other"
agent p3
sleep 1
stop_agent p3
grep -q "msg=\"remote-write queue of an endpoint no longer configured: left alone\" dir=\"$Q/$old\"" \
	"$WORK/p3.log" || fail "the old queue directory was not named in the log"
[ -d "$Q/$old" ] || fail "the old queue directory was removed"
[ "$(ls "$Q" | wc -l)" = 2 ] || fail "the new URL did not get its own directory: $(ls "$Q")"
ok "the queue of a removed endpoint is left alone and logged"

# 9. Shutdown with a disk queue does not wait for a receiver that is down:
#    once the final snapshot and stale markers are on disk, senders stop at
#    the first failed request, SIGTERM ends the agent (here within 5 s
#    although --remote-write.timeout is 30s) and they are sent at the next
#    start. A hanging receiver holds the shutdown until its deadline (the
#    timeout), no longer. With the receiver up they are delivered at once;
#    a slow receiver with a backlog gets all of it before the exit, as long
#    as the deadline allows (not cut after a fixed second).
rm -rf "$Q"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
exit_ms() { # NAME: SIGTERM; ms = the milliseconds until it exited (status 0)
	local pid rc=0 t0
	pid=$(cat "$WORK/$1.pid")
	t0=$(date +%s%N)
	kill "$pid"
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "$1 exited with status $rc after SIGTERM"
	ms=$((($(date +%s%N) - t0) / 1000000))
}
agent d1 --remote-write.timeout 30s
sleep 1
exit_ms d1
[ "$ms" -lt 5000 ] || fail "SIGTERM with the receiver down took $ms ms with a disk queue"
grep -q 'msg="remote write stopped: the samples unsent stay on disk, sent at the next start"' \
	"$WORK/d1.log" || fail "the shutdown does not say what stays on disk"
ok "receiver down: SIGTERM to exit in $ms ms (timeout 30s), the rest stays on disk"

SP=$(free_port)
start stall "$STALL_SERVER" "$SP" "$WORK/stall.requests"
Q2="$WORK/queue2"
start d2 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "http://127.0.0.1:$SP/push" \
	--remote-write.queue-dir "$Q2" --remote-write.interval 200ms --remote-write.timeout 3s --web.disable
for _ in $(seq 1 50); do
	grep -q '^POST' "$WORK/stall.requests" 2>/dev/null && break
	sleep 0.1
done
grep -q '^POST' "$WORK/stall.requests" || fail "no request reached the stalling receiver"
exit_ms d2
stop stall
[ "$ms" -lt 6000 ] || fail "SIGTERM with a request hanging took $ms ms with a disk queue (timeout 3s)"
ok "receiver hanging: SIGTERM to exit in $ms ms (timeout 3s)"

t_restart=$(($(date +%s%N) / 1000000))
start recv2 "$RW_RECEIVER" "$RP" "$WORK/recv2.events"
agent d3 --remote-write.timeout 30s
for _ in $(seq 1 50); do
	grep -q '^R 200' "$WORK/recv2.events" 2>/dev/null && break
	sleep 0.1
done
sleep 1
t_stop=$(($(date +%s%N) / 1000000))
exit_ms d3
stop recv2
awk -F'\t' -v s="$S" -v t="$t_restart" '$1 == "S" && $2 == s && $4 == "stale" && $3 < t' \
	"$WORK/recv2.events" | grep -q . || fail "the stale markers queued at the first shutdown never arrived"
awk -F'\t' -v s="$S" -v t="$t_stop" '$1 == "S" && $2 == s && $4 == "stale" && $3 >= t' \
	"$WORK/recv2.events" | grep -q . || fail "the stale markers of a shutdown with the receiver up were not delivered"
ok "the final snapshot left on disk arrives at the next start; with the receiver up it is delivered at shutdown ($ms ms)"

# A backlog and a slow receiver (400 ms a request): SIGTERM right after it
# comes up; delivery goes on until the queue is empty (well within the 30 s
# deadline), the shutdown's own stale markers included. Before, it was cut
# one second after the final snapshot, the rest left on disk.
rm -rf "$Q"
agent d4 --remote-write.timeout 30s
sleep 2
start recv4 "$RW_RECEIVER" -d 400 "$RP" "$WORK/recv4.events"
for _ in $(seq 1 50); do
	grep -q '^R 200' "$WORK/recv4.events" 2>/dev/null && break
	sleep 0.1
done
grep -q '^R 200' "$WORK/recv4.events" || fail "nothing reached the slow receiver"
t_stop=$(($(date +%s%N) / 1000000))
exit_ms d4
stop recv4
! grep 'msg="remote write stopped: the samples unsent stay on disk' "$WORK/d4.log" ||
	fail "shutdown left the backlog on disk although the deadline was far ($ms ms)"
awk -F'\t' -v s="$S" -v t="$t_stop" '$1 == "S" && $2 == s && $4 == "stale" && $3 >= t' \
	"$WORK/recv4.events" | grep -q . || fail "the stale markers of the shutdown were not delivered ($ms ms)"
n=$(grep -c '^R 200' "$WORK/recv4.events")
[ "$(find "$Q" -name '*.seg' | wc -l)" = 0 ] || fail "segments left on disk after a complete delivery"
ok "slow receiver, backlog: $n requests delivered during the shutdown ($ms ms, deadline 30s)"
