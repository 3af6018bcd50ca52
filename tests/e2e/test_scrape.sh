#!/usr/bin/env bash
# End-to-end: the scrape page. /metrics equals what --once prints, passes
# promtool, is gzipped on request; the landing page links to it; many idle
# and slow connections do not block a scrape.
. "$(dirname "$0")/lib.sh"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
RANGES=(-r '10.0.0.0/30:customer=a' -r 10.0.0.0/8:customer=b -r '[2001:db8::]-[2001:db8::ffff]:site=x')
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" >"$WORK/once.out" 2>/dev/null

PORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" "${RANGES[@]}" --web.listen-address "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT"
wait_http "$URL/metrics"
# the file is read at start; wait until all of it is counted
for _ in $(seq 1 50); do
	curl -fsS "$URL/metrics" >"$WORK/page.out"
	[ "$(value_of "$WORK/page.out" 'promacct_pcap_received_packets_total{interface="eth.pcap"}')" = 28 ] && break
	sleep 0.1
done
diff -u <(stable "$WORK/once.out") <(stable "$WORK/page.out" | grep -v '^# .* promacct_http_') ||
	fail "/metrics differs from --once"
promtool check metrics <"$WORK/page.out" || fail "promtool on /metrics"
ok "/metrics equals --once and passes promtool"

curl -fsS -D "$WORK/h" -H 'Accept-Encoding: gzip' -o "$WORK/page.gz" "$URL/metrics"
grep -qi '^Content-Encoding: gzip' "$WORK/h" || fail "no gzip"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$WORK/h" || fail "content type"
gunzip -c "$WORK/page.gz" | stable >"$WORK/gz.out"
diff -q <(stable "$WORK/page.out" | grep -v promacct_http_) <(grep -v promacct_http_ "$WORK/gz.out") >/dev/null ||
	fail "gzip page differs"
ok "gzip when asked"

curl -fsS "$URL/" >"$WORK/landing.html"
grep -q 'href="/metrics"' "$WORK/landing.html" || fail "landing page"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")" = 404 ] || fail "404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/metrics")" = 405 ] || fail "405"
ok "landing page, 404, 405"

# 300 idle connections and 50 that sent half a request, all from 127.0.0.1
# (it may hold 64: the rest are refused at once): scrapes from another
# client address (127.0.0.2) are still fast.
exec 3<>/dev/null
trap '' PIPE
fds=()
for i in $(seq 1 300); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	fds+=("$fd")
done
for i in $(seq 1 50); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n' >&"$fd" 2>/dev/null || true # refused ones are closed
	fds+=("$fd")
done
for i in 1 2 3 4 5; do
	t=$(curl -fsS --interface 127.0.0.2 -o /dev/null -w '%{time_total}' --max-time 5 "$URL/metrics") ||
		fail "scrape blocked by idle connections"
	awk -v t="$t" 'BEGIN { exit !(t < 2.0) }' || fail "scrape took ${t}s with idle connections"
done
for fd in "${fds[@]}"; do exec {fd}>&-; done
ok "350 idle/slow connections do not block scrapes"
stop_agent agent
