#!/usr/bin/env bash
# End-to-end: the on-disk remote-write queue across a clock that did not
# move forward (issue 11). The first agent queues snapshots an hour ahead
# while the receiver is down, and is killed; the second runs on
# the real clock, an hour "earlier". The receiver gets the replayed
# snapshots first, then new ones stamped after them (one millisecond apart
# until the clock passes them): per-series timestamps strictly increasing,
# each sample once. The hour ahead is given to the queue the first agent
# wrote (rwq_shift moves every record and sample timestamp by +1 h), not to
# the agent: libfaketime preloaded into it hung it at start-up on a CI machine.
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}" "${RWQ_SHIFT:?}"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
Q="$WORK/queue"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
agent() { # NAME [ENV...]: an agent writing to the receiver through the disk queue
	local name=$1
	shift
	start "$name" env "$@" "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
		--remote-write.queue-dir "$Q" --remote-write.interval 200ms --remote-write.max-backoff 200ms \
		--remote-write.timeout 2s --web.disable --log.level debug
}
queued() { # LOG: the snapshot timestamps it queued completely
	sed -n 's/.*msg="remote-write snapshot queued" ts_ms=\([0-9]*\) stale=0 .*complete=1.*/\1/p' "$1"
}

# 1. Receiver down: snapshots queued on disk, then SIGKILL; the queue is
# then moved an hour ahead, as if the agent's clock had been.
H=3600000
agent ahead
for _ in $(seq 1 50); do
	[ "$(queued "$WORK/ahead.log" | wc -l)" -ge 5 ] && break
	sleep 0.1
done
kill -9 "$(cat "$WORK/ahead.pid")"
wait "$(cat "$WORK/ahead.pid")" 2>/dev/null || true
moved=$("$RWQ_SHIFT" "$Q" "$WORK/queue-ahead" "$URL" "$H") || fail "rwq_shift failed"
rm -rf "$Q"
mv "$WORK/queue-ahead" "$Q"
queued "$WORK/ahead.log" | awk -v h="$H" '{ printf "%.0f\n", $1 + h }' >"$WORK/ahead.ts"
[ "$moved" -ge "$(wc -l <"$WORK/ahead.ts")" ] || fail "only $moved records moved an hour ahead"
now=$(($(date +%s%N) / 1000000))
first=$(head -n1 "$WORK/ahead.ts")
[ "$((first - now))" -gt 3000000 ] || fail "the queue was not ahead: $first vs $now"

# 2. The real clock, receiver up.
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
agent back
for _ in $(seq 1 100); do
	[ "$(queued "$WORK/back.log" | wc -l)" -ge 5 ] && break
	sleep 0.1
done
sleep 1
stop_agent back
stop recv
E="$WORK/recv.events"
! grep '^V ' "$E" || fail "wire-format violations"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$E" || fail "timestamps not strictly increasing (or a sample sent twice)"
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 != "stale" { print $3 }' "$E" >"$WORK/ts"
missing=$(grep -vxF -f "$WORK/ts" "$WORK/ahead.ts" || true)
[ -z "$missing" ] || fail "snapshots queued an hour ahead never arrived: $missing"
max_ahead=$(sort -n "$WORK/ahead.ts" | tail -n1)
queued "$WORK/back.log" >"$WORK/back.ts"
new=$(awk -v m="$max_ahead" '$1 > m' "$WORK/back.ts" | wc -l)
[ "$new" -ge 5 ] && [ "$new" = "$(wc -l <"$WORK/back.ts")" ] ||
	fail "the agent on the earlier clock stamped snapshots before the replayed ones"
arrived=$(awk -v m="$max_ahead" '$1 > m' "$WORK/ts" | wc -l)
[ "$arrived" -ge 5 ] || fail "only $arrived new snapshots arrived after the replayed ones"
ok "clock an hour back across a restart: $(wc -l <"$WORK/ahead.ts") replayed, then $arrived new snapshots stamped after them, strictly increasing"

# 3. A queue sent whole before the restart: no record is left to read a
#    timestamp from, but the last one queued is stored in the queue
#    directory (`timestamp`). An agent delivers everything and stops
#    cleanly (its final values and stale markers accepted, no segment left);
#    its stored timestamp is moved an hour ahead (as if its clock had
#    been); the next agent, on the real clock, stamps every sample after it
#    (before: an hour before what the receiver already held).
rm -rf "$Q"
start recv3 "$RW_RECEIVER" "$RP" "$WORK/recv3.events"
agent sent
for _ in $(seq 1 100); do
	[ "$(queued "$WORK/sent.log" | wc -l)" -ge 3 ] && grep -q '^R 200' "$WORK/recv3.events" && break
	sleep 0.1
done
stop_agent sent
E3="$WORK/recv3.events"
grep -q 'msg="remote write stopped: the samples unsent' "$WORK/sent.log" &&
	fail "the first agent did not deliver everything before it stopped"
segs=$(find "$Q" -name '*.seg' | wc -l)
[ "$segs" = 0 ] || fail "$segs segments left after everything was sent"
last=$(awk -F'\t' '$1 == "S" { if ($3 > m) m = $3 } END { printf "%.0f\n", m }' "$E3")
[ "$last" -gt 0 ] || fail "the first agent delivered nothing"
moved=$("$RWQ_SHIFT" "$Q" "$WORK/queue-ahead" "$URL" "$H") || fail "rwq_shift failed"
[ "$moved" = 0 ] || fail "$moved records left in a queue sent whole"
rm -rf "$Q"
mv "$WORK/queue-ahead" "$Q"
agent later
for _ in $(seq 1 100); do
	[ "$(queued "$WORK/later.log" | wc -l)" -ge 5 ] && break
	sleep 0.1
done
sleep 0.5
stop_agent later
stop recv3
! grep '^V ' "$E3" || fail "wire-format violations"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$E3" || fail "timestamps not strictly increasing after a queue sent whole"
early=$(awk -F'\t' -v l="$last" -v h="$H" '$1 == "S" && $3 > l && $3 <= l + h' "$E3" | wc -l)
[ "$early" = 0 ] || fail "$early samples stamped before the timestamp stored an hour ahead"
new=$(awk -F'\t' -v l="$last" -v h="$H" '$1 == "S" && $2 == s && $3 > l + h && $4 != "stale"' s="$S" "$E3" | wc -l)
[ "$new" -ge 5 ] || fail "only $new snapshots of the second agent arrived"
grep -q 'msg="remote-write queue: the clock is behind the last timestamp queued before' \
	"$WORK/later.log" || fail "the clock behind the stored timestamp was not logged"
ok "queue sent whole, stored timestamp an hour ahead: the next agent's $new snapshots stamped after it"
