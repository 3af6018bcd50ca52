#!/usr/bin/env bash
# End-to-end: the status page at / in a real browser (headless Chromium).
# Live traffic on a veth pair into this test's namespace; the page loaded by
# Chromium must hold a non-empty throughput chart (SVG polylines with
# points) and the top-talkers table with the live addresses; outside text
# (range labels) is escaped; a screenshot is taken; and with
# --web.config.file basic auth, / needs the same credentials as /metrics.
. "$(dirname "$0")/lib.sh"
need_root
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
	echo "SKIP: chromium not installed (sh deploy/install-deps.sh --test installs it)"
	exit 77
fi
command -v htpasswd >/dev/null || fail "htpasswd (apache2-utils) not installed"
cd "$WORK"

veth_netns s
veth_up 10.189.0
ip netns exec "$NS" ip addr add 10.189.0.3/24 dev "$NS_IF"

# Traffic for the whole test: 10.189.0.2 sends to 10.189.0.1, which sends a
# little to 10.189.0.3: .1 is the busiest (in and out), then .2, then .3.
ip netns exec "$NS" bash -c 'p=$(head -c 1172 /dev/zero | tr "\0" x)
	while :; do for i in 1 2 3 4 5 6 7 8; do printf %s "$p" >/dev/udp/10.189.0.1/9; done
	printf %s "${p:0:200}" >/dev/udp/10.189.0.1/10 2>/dev/null || true
	sleep 0.0$((SECONDS % 4 * 2 + 3)); done' >/dev/null 2>&1 &
PIDS+=($!)
ip neigh replace 10.189.0.3 lladdr "$(ip netns exec "$NS" cat /sys/class/net/$NS_IF/address)" dev "$HOST_IF"
bash -c 'while :; do printf %300s x >/dev/udp/10.189.0.3/9; sleep 0.1; done' >/dev/null 2>&1 &
PIDS+=($!)

browse() { # URL OUT [EXTRA CHROMIUM FLAGS]: the DOM after load
	local url=$1 out=$2
	shift 2
	timeout 40 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d "$WORK/chromium.XXXXXX")" "$@" "$url" \
		>"$out" 2>>"$WORK/chromium.log"
}

PORT=$(free_port)
DEAD=$(free_port) # a remote-write target nobody listens on: a failing row
start agent "$PROMACCT" -i "$HOST_IF" -r '10.189.0.0/24:customer=a<b>&"c"' \
	--remote-write.url "http://127.0.0.1:$DEAD/api/v1/write" --remote-write.interval 1s \
	--remote-write.timeout 1s \
	--web.status-interval 1s --web.listen-address "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT/"
wait_http "$URL"
# Rows appear once an address has two samples of its own (2-3 intervals).
for _ in $(seq 1 100); do
	curl -fsS "$URL" >page.html
	grep -q '>10\.189\.0\.3<' page.html && grep -q '>10\.189\.0\.2<' page.html &&
		grep -q '>10\.189\.0\.1<' page.html && break
	sleep 0.2
done
grep -q '>10\.189\.0\.3<' page.html || fail "top talkers: 10.189.0.3 missing"
curl -sSI "$URL" | grep -qi '^Content-Type: text/html' || fail "/ is not text/html"
sleep 2 # a few chart points

browse "$URL" dom.html --dump-dom || fail "chromium --dump-dom failed: $(tail -3 chromium.log)"
# The chart: two SVG charts, a polyline per interface with at least 2 points.
grep -c '<svg class="chart"' dom.html | grep -qx 2 || fail "DOM: not two SVG charts"
pts=$(grep -o "<polyline[^>]*data-interface=\"$HOST_IF\"[^>]*points=\"[^\"]*\"" dom.html |
	head -1 | sed 's/.*points="//; s/"$//' | wc -w)
[ "$pts" -ge 2 ] || fail "DOM: the $HOST_IF polyline has $pts points"
# a point of the bits/s chart above the baseline: traffic is drawn
grep -o "<polyline[^>]*data-interface=\"$HOST_IF\"[^>]*points=\"[^\"]*\"" dom.html | head -1 |
	sed 's/.*points="//; s/"$//' | tr ' ' '\n' | awk -F, 'NF == 2 && $2 < 179 { up = 1 } END { exit !up }' ||
	fail "DOM: the bits/s line is flat at zero with traffic flowing"
ok "chart: $pts points for $HOST_IF"
# The table, in the browser's DOM: the live addresses, busiest first.
tbody=$(sed -n '/<table id="talkers">/,/<\/table>/p' dom.html)
order=$(grep -o '<td class="addr">[^<]*' <<<"$tbody" | sed 's/.*>//' | tr '\n' ' ')
[ "$order" = "10.189.0.1 10.189.0.2 10.189.0.3 " ] || fail "DOM table: addresses '$order'"
# Range labels are text, not markup.
grep -q 'customer=a&lt;b&gt;&amp;"c"' <<<"$tbody" || fail "DOM table: range label not escaped as text"
grep -q '<b>' <<<"$tbody" && fail "DOM table: a label became markup"
grep -q "<td>$HOST_IF</td>" <(sed -n '/<table id="capture">/,/<\/table>/p' dom.html) ||
	fail "DOM: no capture row for $HOST_IF"
grep -q "<td>http://127.0.0.1:$DEAD/api/v1/write</td><td>remote write</td><td>never</td>" \
	<(sed -n '/<table id="targets">/,/<\/table>/p' dom.html) ||
	fail "DOM: no delivery row for the remote-write target"
ok "table: live addresses, escaped labels, capture and delivery rows"

# STATUS_PAGE_SCREENSHOT_WAIT=SECONDS: a longer history for the README's image
sleep "${STATUS_PAGE_SCREENSHOT_WAIT:-0}"
browse "$URL" /dev/null --screenshot="$WORK/status-page.png" --window-size=1200,900 \
	--hide-scrollbars || fail "chromium --screenshot failed: $(tail -3 chromium.log)"
[ -s "$WORK/status-page.png" ] || fail "no screenshot"
[ "$(head -c 8 "$WORK/status-page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
	fail "screenshot is not a PNG"
# STATUS_PAGE_SCREENSHOT=FILE keeps it (how docs/status-page.png is made).
if [ -n "${STATUS_PAGE_SCREENSHOT:-}" ]; then cp "$WORK/status-page.png" "$STATUS_PAGE_SCREENSHOT"; fi
ok "screenshot $(stat -c %s "$WORK/status-page.png") bytes"
stop_agent agent

# With basic auth from --web.config.file: / needs the credentials of /metrics.
HASH=$(htpasswd -nbBC 10 "" s3cret | tr -d ':\n')
printf 'basic_auth_users:\n  admin: %s\n' "$HASH" >web.yml
PORT=$(free_port)
start agent2 "$PROMACCT" -i "$HOST_IF" -r 10.189.0.0/24 --web.config.file "$WORK/web.yml" \
	--web.status-interval 1s --web.listen-address "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT/"
for _ in $(seq 1 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 401 ] && break
	sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 401 ] || fail "/ without credentials: not 401"
[ "$(curl -s -o /dev/null -w '%{http_code}' -u admin:wrong "$URL")" = 401 ] ||
	fail "/ with a wrong password: not 401"
[ "$(curl -s -o auth.html -w '%{http_code}' -u admin:s3cret "$URL")" = 200 ] ||
	fail "/ with the password: not 200"
grep -q '<svg class="chart"' auth.html || fail "/ with the password: not the status page"
browse "$URL" noauth.html --dump-dom || true
grep -q '<svg class="chart"' noauth.html && fail "chromium saw the page without credentials"
ok "basic auth: / is 401 without credentials, the page with them"
stop_agent agent2
