#!/usr/bin/env bash
# End-to-end: the on-disk remote-write queue with --user (issue 11, issue 9).
# The queue is opened before the privilege drop, as root; the agent then
# runs as nobody and must still append, record what is done and delete
# segments, also in a queue directory an earlier run as root created (and
# under a parent directory nobody cannot even enter).
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}"
need_root

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
chmod 0700 "$WORK"
Q="$WORK/queue"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
agent() { # NAME [FLAGS...]
	local name=$1
	shift
	start "$name" "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
		--remote-write.queue-dir "$Q" --remote-write.interval 200ms --remote-write.max-backoff 200ms \
		--remote-write.timeout 2s --web.disable --log.level debug "$@"
}
queued() { # LOG: the snapshot timestamps it queued completely
	sed -n 's/.*msg="remote-write snapshot queued" ts_ms=\([0-9]*\) stale=0 .*complete=1.*/\1/p' "$1"
}
no_disk_errors() { # NAME
	! grep -E 'msg="remote-write queue: (cannot write|file error)' "$WORK/$1.log" ||
		fail "$1 could not use its queue on disk"
}

# 1. As root, receiver down: a queue directory owned by root.
agent r1
sleep 1
kill -9 "$(cat "$WORK/r1.pid")"
wait "$(cat "$WORK/r1.pid")" 2>/dev/null || true
no_disk_errors r1
[ "$(find "$Q" -name '*.seg' -user root | wc -l)" -ge 1 ] || fail "nothing queued as root"

# 2. As nobody, receiver still down: it replays the root queue and appends.
agent n1 --user nobody
for _ in $(seq 1 50); do
	[ "$(queued "$WORK/n1.log" | wc -l)" -ge 4 ] && break
	sleep 0.1
done
grep -q 'msg="remote-write queue on disk".*requests=[1-9]' "$WORK/n1.log" ||
	fail "the agent as nobody did not find the queue"
[ "$(stat -c %U /proc/"$(cat "$WORK/n1.pid")")" = nobody ] || fail "the agent does not run as nobody"
sleep 0.5
no_disk_errors n1
[ "$(find "$Q" -name '*.seg' -user nobody -size +0 | wc -l)" -ge 1 ] ||
	fail "the agent as nobody wrote no segment: $(ls -ln "$Q"/*)"
ok "as nobody: the queue root left is replayed and new requests are appended"

# 3. The receiver comes up: every snapshot of both runs arrives, and the
#    segments are deleted (by nobody).
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
for _ in $(seq 1 100); do
	grep -q '^R 200' "$WORK/recv.events" 2>/dev/null && break
	sleep 0.1
done
sleep 2
stop_agent n1
stop recv
no_disk_errors n1
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 != "stale" { print $3 }' "$WORK/recv.events" >"$WORK/ts"
queued "$WORK/r1.log" >"$WORK/want"
queued "$WORK/n1.log" >>"$WORK/want"
[ "$(wc -l <"$WORK/want")" -ge 6 ] || fail "too few snapshots queued: $(wc -l <"$WORK/want")"
missing=$(grep -vxF -f "$WORK/ts" "$WORK/want" || true)
[ -z "$missing" ] || fail "snapshots queued never arrived: $missing"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$WORK/recv.events" || fail "timestamps not strictly increasing"
left=$(find "$Q" -name '*.seg' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
[ "$left" = 0 ] || fail "$left bytes of segments left after everything was accepted"
ok "as nobody: all $(wc -l <"$WORK/want") snapshots of both runs delivered, segments deleted"

# 4. Again as nobody: the directory it now uses opens without error.
agent n2 --user nobody
sleep 1
stop_agent n2
no_disk_errors n2
grep -q 'msg="remote-write queue on disk"' "$WORK/n2.log" || fail "the second run as nobody did not open the queue"
ok "a restart as nobody opens the same queue"

# 5. The directory is nobody's, who can put links and FIFOs in it (review
#    of issue 11): with format removed and format.tmp a link to a file of
#    root's, and a FIFO named as a segment, root at the next start follows
#    no link (the file stays as it was, root's) and does not hang.
D=$(find "$Q" -mindepth 1 -maxdepth 1 -type d | head -n1)
printf 'precious\n' >"$WORK/victim"
rm -f "$D/format"
ln -s "$WORK/victim" "$D/format.tmp"
ln -s "$WORK/victim" "$D/00000000000000000098.done"
mkfifo "$D/00000000000000000099.seg"
chown -h nobody "$D/format.tmp" "$D/00000000000000000098.done" "$D/00000000000000000099.seg"
agent n3 --user nobody
for _ in $(seq 1 50); do
	grep -q 'msg="remote-write queue on disk"' "$WORK/n3.log" && break
	sleep 0.1
done
grep -q 'msg="remote-write queue on disk"' "$WORK/n3.log" || fail "the start-up hung or failed: $(cat "$WORK/n3.log")"
grep -q 'msg="remote-write queue: a file that is not a segment skipped"' "$WORK/n3.log" ||
	fail "the FIFO was not reported"
stop_agent n3
[ "$(cat "$WORK/victim")" = precious ] || fail "root wrote through a link: $(cat "$WORK/victim")"
[ "$(stat -c %U "$WORK/victim")" = root ] || fail "root gave a linked file away"
[ -f "$D/format" ] && [ ! -L "$D/format" ] || fail "format was not written anew"
ok "links and a FIFO in the queue directory: nothing followed, nothing hung"
