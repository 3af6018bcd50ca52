#!/usr/bin/env bash
# End-to-end: the on-disk remote-write queue across a change of
# --remote-write.max-shards (review of issue 11). A series is on shard
# hash % max-shards of the run that wrote it: records of a run with 1 shard
# and of a run with 8, replayed each on its own shard, put one series on two
# shards sending at once, its older samples after newer ones (Prometheus
# drops them: out of order). Receiver down: a run with 1 shard, kill -9; a
# run with 8, kill -9; receiver up, a run with 8: every queued snapshot
# arrives, per-series timestamps strictly increasing.
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
Q="$WORK/queue"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
agent() { # NAME SHARDS: an agent writing to the receiver through the disk queue
	start "$1" "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
		--remote-write.queue-dir "$Q" --remote-write.interval 100ms --remote-write.max-backoff 200ms \
		--remote-write.max-shards "$2" --remote-write.max-samples-per-send 1 \
		--remote-write.timeout 2s --web.disable --log.level debug
}
queued() { # LOG: the snapshot timestamps it queued completely
	sed -n 's/.*msg="remote-write snapshot queued" ts_ms=\([0-9]*\) stale=0 .*complete=1.*/\1/p' "$1"
}
run_killed() { # NAME SHARDS: queues 8 snapshots with the receiver down, then SIGKILL
	agent "$1" "$2"
	for _ in $(seq 1 100); do
		[ "$(queued "$WORK/$1.log" | wc -l)" -ge 8 ] && break
		sleep 0.1
	done
	kill -9 "$(cat "$WORK/$1.pid")"
	wait "$(cat "$WORK/$1.pid")" 2>/dev/null || true
	queued "$WORK/$1.log" >"$WORK/$1.ts"
	[ "$(wc -l <"$WORK/$1.ts")" -ge 8 ] || fail "$1 queued fewer than 8 snapshots"
}

run_killed one 1
run_killed eight 8
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
agent last 8
for _ in $(seq 1 100); do
	[ "$(queued "$WORK/last.log" | wc -l)" -ge 5 ] && break
	sleep 0.1
done
sleep 1
stop_agent last
stop recv
E="$WORK/recv.events"
! grep '^V ' "$E" || fail "wire-format violations"
series=$(awk -F'\t' '$1 == "S" { print $2 }' "$E" | sort -u | wc -l)
[ "$series" -ge 4 ] || fail "only $series series: the test needs several shards in use"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$E" || fail "timestamps not strictly increasing across the change of max-shards"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 != "stale" { print $3 }' "$E" >"$WORK/ts"
missing=$(cat "$WORK/one.ts" "$WORK/eight.ts" | grep -vxF -f "$WORK/ts" || true)
[ -z "$missing" ] || fail "queued snapshots never arrived: $missing"
grep -q 'replayed on one shard' "$WORK/last.log" || fail "the replay on one shard was not logged"
ok "max-shards 1 then 8 across kill -9: $(cat "$WORK/one.ts" "$WORK/eight.ts" | wc -l) snapshots replayed, $series series, strictly increasing"
