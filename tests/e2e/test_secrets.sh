#!/usr/bin/env bash
# End-to-end (issue 9, secrets): a password in a URL's user info and a token
# in its query never show on the page, in the log (debug level, successes
# and failures) or in a usage error; the URLs are shown as
# http://admin:<secret>@host/path?<query>.
. "$(dirname "$0")/lib.sh"
command -v prometheus-pushgateway >/dev/null || fail "prometheus-pushgateway not installed"
: "${RW_RECEIVER:?}"

"$PCAPGEN" en10mb "$WORK/a.pcap" <"$TESTDATA/links.spec"
GP=$(free_port)
RP=$(free_port)
DEAD=$(free_port) # nothing listens: transport errors name the URL
SPORT=$(free_port)
start_pushgateway gw "$GP"
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
wait_http "http://127.0.0.1:$GP/-/ready"

start agent "$PROMACCT" -R "$WORK/a.pcap" --log.level debug \
	--web.listen-address "127.0.0.1:$SPORT" \
	--push.gateway "http://admin:S3CRET@127.0.0.1:$GP/?token=T0KEN" --push.interval 200ms \
	--remote-write.url "http://admin:S3CRET@127.0.0.1:$RP/api/v1/write?token=T0KEN" \
	--remote-write.url "http://rw:S3CRET@127.0.0.1:$DEAD/api/v1/write?token=T0KEN" \
	--remote-write.interval 200ms --remote-write.max-backoff 200ms --remote-write.timeout 2s \
	--push.timeout 5s
wait_http "http://127.0.0.1:$SPORT/metrics"
pushed() {
	curl -fsS -o "$WORK/gw.page" "http://127.0.0.1:$GP/metrics" &&
		grep -q '^promacct_packet_size_bytes_all' "$WORK/gw.page"
}
for _ in $(seq 1 300); do
	pushed && grep -q 'remote write succeeded' "$WORK/agent.log" &&
		grep -q 'remote write failed' "$WORK/agent.log" && break
	sleep 0.1
done
pushed || fail "nothing pushed"
grep -q 'remote write succeeded' "$WORK/agent.log" || fail "remote write never succeeded"
grep -q 'remote write failed' "$WORK/agent.log" || fail "the dead endpoint never failed"
curl -fsS "http://127.0.0.1:$SPORT/metrics" >"$WORK/page.txt"
stop_agent agent

for f in page.txt agent.log; do
	if grep -n -e S3CRET -e T0KEN "$WORK/$f"; then
		fail "a secret shows in $f"
	fi
done
ok "no password or token on the page or in the log"
grep -q "url=\"http://admin:<secret>@127.0.0.1:$RP/api/v1/write?<query>\"" "$WORK/page.txt" ||
	fail "the url label is not the redacted URL"
grep -q "url=\"http://rw:<secret>@127.0.0.1:$DEAD/api/v1/write?<query>\"" "$WORK/agent.log" ||
	fail "the failing endpoint's log line does not name its redacted URL"
grep -q "msg=\"http request\" method=PUT url=http://admin:<secret>@127.0.0.1:$GP/metrics/job/promacct/instance/[^ ]*?<query> status=200" \
	"$WORK/agent.log" || fail "no debug line for the push"
grep -q 'msg="URL with a password, user info, path parameters or a query on the command line' "$WORK/agent.log" ||
	fail "no warning about credentials on the command line"
ok "URLs shown as http://admin:<secret>@host/path?<query>"

rc=0
"$PROMACCT" -R "$WORK/a.pcap" --push.gateway "ftp://admin:S3CRET@h/?token=T0KEN" 2>"$WORK/usage.txt" ||
	rc=$?
[ "$rc" = 2 ] || fail "bad URL: exit $rc"
if grep -e S3CRET -e T0KEN "$WORK/usage.txt"; then
	fail "a usage error shows the secret"
fi
ok "usage errors do not echo URLs"

# Endpoints that differ only in what is hidden (here the query) keep
# distinct url labels: no duplicate series on the page.
PORT=$(free_port)
start twins "$PROMACCT" -R "$WORK/a.pcap" --web.listen-address "127.0.0.1:$PORT" \
	--remote-write.url 'http://127.0.0.1:1/push?tenant=a' \
	--remote-write.url 'http://127.0.0.1:1/push?tenant=b' --remote-write.timeout 1s
wait_http "http://127.0.0.1:$PORT/metrics"
curl -fsS "http://127.0.0.1:$PORT/metrics" >"$WORK/twins.txt"
grep -q '^promacct_remote_write_samples_total{url="http://127.0.0.1:1/push?<query>#2",result="sent"}' \
	"$WORK/twins.txt" || fail "the second endpoint has no url label of its own"
dups=$(grep '^promacct_remote_write' "$WORK/twins.txt" | awk '{ print $1 }' | sort | uniq -d | wc -l)
[ "$dups" = 0 ] || fail "$dups duplicate series on the page"
ok "endpoints that differ only in their query keep distinct url labels"
stop_agent twins
