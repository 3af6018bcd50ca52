#!/usr/bin/env bash
# End-to-end (issue 14): a client that stops reading a large page, or reads
# it a few bytes at a time, holds a render slot only until
# --web.write-stall-timeout; then its scrape is cut, counted, and the slot
# serves others, its own address included. Without the limit two such
# clients from one address held that address's share of the render slots
# (half of --web.max-requests) for as long as they stayed connected.
. "$(dirname "$0")/lib.sh"

# 30,000 addresses: a page of tens of MB, far more than the socket buffers
# and the render queue hold.
awk 'BEGIN { for (i = 0; i < 30000; i++)
	printf "ip4 10.%d.%d.%d 192.0.2.1 tcp 134\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256 }' |
	"$PCAPGEN" en10mb "$WORK/many.pcap"
PORT=$(free_port)
start big "$PROMACCT" -R "$WORK/many.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$PORT" \
	--web.max-requests 6 --web.write-stall-timeout 2s
URL="http://127.0.0.1:$PORT/metrics"
wait_http "$URL"

trap '' PIPE
# Two clients from 127.0.0.1 that never read, one that reads a byte every
# 0.2 s: 127.0.0.1 may hold three render slots at once (half of 6), so all
# three render at once and no scrape of theirs waits for a slot.
fds=()
for i in 1 2; do
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	fds+=("$fd")
done
exec {tfd}<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >&"$tfd"
(while IFS= read -r -n1 -u "$tfd" _; do sleep 0.2; done) &
trickler=$!
CLEANUPS+=("kill $trickler")

# Each is cut 2 s after its render filled the socket and the queue.
stalls=0
for _ in $(seq 1 100); do
	curl -fsS --interface 127.0.0.2 --max-time 20 "$URL" >"$WORK/page.out" ||
		fail "scrape from 127.0.0.2 failed"
	stalls=$(value_of "$WORK/page.out" promacct_http_write_stalls_total)
	[ "${stalls:-0}" -ge 3 ] && break
	sleep 0.2
done
[ "${stalls:-0}" -ge 3 ] || fail "stalled scrapes cut: ${stalls:-none}, want 3"
grep -q 'msg="scrape cut: the client stopped reading"' "$WORK/big.log" || fail "no log line"
ok "two never-reading clients and a trickling one were cut ($stalls counted, logged)"

# Their address gets render slots again: scrapes from 127.0.0.1 succeed and
# are complete.
for _ in 1 2; do
	code=$(curl -sS -o "$WORK/own.out" -w '%{http_code}' --max-time 20 "$URL") || true
	[ "$code" = 200 ] || fail "scrape from 127.0.0.1 got '$code' after the stalls"
done
tail -n1 "$WORK/own.out" | grep -q '^promacct_' || fail "the page from 127.0.0.1 is cut"
n=$(grep -c '^promacct_packet_size_bytes_ipv4_tx_count{' "$WORK/own.out")
[ "$n" -eq 30000 ] || fail "$n address series on the page, want 30000"
ok "127.0.0.1 scrapes whole pages again (30000 address series)"

kill "$trickler" 2>/dev/null || true
for fd in "${fds[@]}" "$tfd"; do exec {fd}>&-; done
stop_agent big
