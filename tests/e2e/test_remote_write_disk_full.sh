#!/usr/bin/env bash
# End-to-end: the on-disk remote-write queue on a disk that fills up
# (issue 11). The queue directory is on a 64 KiB tmpfs made by the test, the
# bound (512M by default) is far above it: with the receiver down the disk
# fills, appends fail with ENOSPC and new requests are dropped (counted,
# logged once). When the receiver comes back, the queued requests are sent,
# their segments deleted, the space comes back and the agent queues and
# sends new snapshots again without a restart.
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}"
need_root # mount

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
mkdir "$WORK/small"
mount -t tmpfs -o size=64k,mode=0700 tmpfs "$WORK/small"
CLEANUPS+=("umount -l '$WORK/small'")
Q="$WORK/small/queue"
RP=$(free_port)
URL="http://127.0.0.1:$RP/push"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
WL=$(free_port)

# 1. Receiver down: the disk fills, appends fail.
start a1 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "$URL" \
	--remote-write.queue-dir "$Q" --remote-write.interval 100ms --remote-write.max-backoff 200ms \
	--remote-write.timeout 2s --web.listen-address "127.0.0.1:$WL"
for _ in $(seq 1 200); do
	grep -q 'msg="remote-write queue: cannot write to disk' "$WORK/a1.log" && break
	sleep 0.1
done
grep -q 'msg="remote-write queue: cannot write to disk.*err="No space left on device"' "$WORK/a1.log" ||
	fail "the disk never filled: $(df -k "$WORK/small" | tail -n1)"
sleep 1
n=$(grep -c 'cannot write to disk' "$WORK/a1.log")
[ "$n" = 1 ] || fail "the full disk was logged $n times, expected once"
curl -fsS "http://127.0.0.1:$WL/metrics" >"$WORK/m1"
dropped=$(awk '/^promacct_remote_write_samples_total\{.*result="dropped"/ { print $2 }' "$WORK/m1")
[ "${dropped:-0}" != 0 ] || fail "the requests that did not fit on disk are not counted as dropped"
ok "a full disk: requests dropped and counted ($dropped samples), logged once"

# 2. The receiver comes up: the queue drains, its space comes back and new
#    snapshots are queued and sent again.
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
t_up=$(($(date +%s%N) / 1000000))
for _ in $(seq 1 100); do
	grep -q 'msg="remote-write queue: writing to disk again' "$WORK/a1.log" && break
	sleep 0.1
done
grep -q 'msg="remote-write queue: writing to disk again".*dropped_requests=[1-9]' "$WORK/a1.log" ||
	fail "the end of the disk errors was not logged with what was dropped"
sleep 3
stop_agent a1
stop recv
E="$WORK/recv.events"
! grep '^V ' "$E" || fail "wire-format violations"
awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
	last[$2] = $3 } END { exit bad }' "$E" || fail "timestamps not strictly increasing (or a sample sent twice)"
new=$(awk -F'\t' -v s="$S" -v t=$((t_up + 1000)) '$1 == "S" && $2 == s && $3 > t' "$E" | wc -l)
[ "$new" -ge 10 ] || fail "only $new snapshots taken after the disk had room again arrived"
left=$(find "$Q" -name '*.seg' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
[ "$left" = 0 ] || fail "$left bytes of segments left on disk after everything was accepted"
ok "space back: the agent queues and sends again without a restart ($new new snapshots), the disk empties"
