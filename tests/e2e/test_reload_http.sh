#!/usr/bin/env bash
# End-to-end (issue 8 reload): POST /-/reload, Prometheus' lifecycle API.
# Without --web.enable-lifecycle it answers 403 "Lifecycle API is not
# enabled."; a method other than POST or PUT gets 405 with an Allow header.
# With the flag it does what SIGHUP does (the file is read and checked
# again, promacct_config_last_reload_successful and _success_timestamp_seconds
# set) and answers 200 on success (changed ranges are applied live), 500
# with the error when the file does not load. SIGHUPs and POSTs at once,
# with the ranges changing each time, run one reload at a time (on the
# main thread) and do not crash the agent. Behind basic auth like every page.
. "$(dirname "$0")/lib.sh"
command -v htpasswd >/dev/null || fail "htpasswd (apache2-utils) not installed"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
good='ranges:
  - prefix: 10.0.0.0/8
    labels: {customer: acme}
'
printf '%s' "$good" >"$WORK/r.yml"

# post URL OUT [CURL ARGS]: the status code; the body in OUT, headers in OUT.h
post() {
	local url=$1 out=$2
	shift 2
	curl -sS -o "$out" -D "$out.h" -w '%{http_code}' --max-time 20 "$@" "$url"
}

# Without the flag: 403 for POST, 405 (with Allow) for GET.
PORT=$(free_port)
start off "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$PORT"
RELOAD="http://127.0.0.1:$PORT/-/reload"
wait_http "http://127.0.0.1:$PORT/metrics"
code=$(post "$RELOAD" "$WORK/off.out" -X POST)
[ "$code" = 403 ] || fail "POST /-/reload without --web.enable-lifecycle: $code, want 403"
grep -qx 'Lifecycle API is not enabled.' "$WORK/off.out" || fail "403 body: $(cat "$WORK/off.out")"
code=$(post "$RELOAD" "$WORK/off.out")
[ "$code" = 405 ] || fail "GET /-/reload: $code, want 405"
grep -qi '^Allow: POST, PUT' "$WORK/off.out.h" || fail "405 without 'Allow: POST, PUT'"
grep -q 'msg="reload requested"' "$WORK/off.log" && fail "a refused request reloaded"
ok "without --web.enable-lifecycle: POST 403 'Lifecycle API is not enabled.', GET 405 with Allow"
stop_agent off

PORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$PORT" --web.enable-lifecycle
URL="http://127.0.0.1:$PORT/metrics"
RELOAD="http://127.0.0.1:$PORT/-/reload"
wait_http "$URL"
PID=$(cat "$WORK/agent.pid")
page() { curl -fsS "$URL" >"$WORK/page.txt"; }
reload_ok() { value_of "$WORK/page.txt" promacct_config_last_reload_successful; }
reload_ts() { value_of "$WORK/page.txt" promacct_config_last_reload_success_timestamp_seconds; }

for m in GET HEAD DELETE; do
	if [ "$m" = HEAD ]; then how=(-I); else how=(-X "$m"); fi
	code=$(post "$RELOAD" "$WORK/m.out" "${how[@]}")
	[ "$code" = 405 ] || fail "$m /-/reload: $code, want 405"
	grep -qi '^Allow: POST, PUT' "$WORK/m.out.h" || fail "$m: 405 without 'Allow: POST, PUT'"
done
ok "with the flag: GET, HEAD and DELETE get 405 with 'Allow: POST, PUT'"

page
ts0=$(reload_ts)
sleep 1.1
code=$(post "$RELOAD" "$WORK/r.out" -X POST)
[ "$code" = 200 ] || fail "POST /-/reload with a good file: $code ($(cat "$WORK/r.out"))"
page
[ "$(reload_ok)" = 1 ] || fail "after a good reload: reload_successful $(reload_ok)"
awk -v a="$(reload_ts)" -v b="$ts0" 'BEGIN { exit !(a > b) }' || fail "success timestamp did not advance"
grep -q 'msg="config reloaded: ranges unchanged"' "$WORK/agent.log" || fail "no reload log line"
code=$(post "$RELOAD" "$WORK/r.out" -X PUT)
[ "$code" = 200 ] || fail "PUT /-/reload with a good file: $code"
ok "POST and PUT with a good file: 200, reload_successful 1, timestamp advanced"

printf 'ranges:\n  - prefix: 10.0.0.0/99\n' >"$WORK/r.yml"
code=$(post "$RELOAD" "$WORK/r.out" -X POST)
[ "$code" = 500 ] || fail "POST /-/reload with a bad file: $code, want 500"
grep -q '^failed to reload config: .*r.yml:2:' "$WORK/r.out" ||
	fail "the 500 does not name FILE:LINE: $(cat "$WORK/r.out")"
page
[ "$(reload_ok)" = 0 ] || fail "a bad file: reload_successful $(reload_ok)"
grep -q 'customer="acme"' "$WORK/page.txt" || fail "a bad file changed the running ranges"
ok "a bad file: 500 '$(head -c 60 "$WORK/r.out")...', reload_successful 0, ranges kept"

printf '%s' "$good" >"$WORK/r.yml"
code=$(post "$RELOAD" "$WORK/r.out" -X POST)
[ "$code" = 200 ] || fail "the file restored: $code"
page
[ "$(reload_ok)" = 1 ] || fail "the file restored: reload_successful $(reload_ok)"
ok "the file restored: 200, reload_successful 1"

other='ranges:
  - prefix: 10.0.0.0/8
    labels: {customer: initech}
'
printf '%s' "$other" >"$WORK/r.yml"
code=$(post "$RELOAD" "$WORK/r.out" -X POST)
[ "$code" = 200 ] || fail "POST /-/reload with changed ranges: $code ($(cat "$WORK/r.out"))"
page
[ "$(reload_ok)" = 1 ] || fail "changed ranges: reload_successful $(reload_ok)"
grep -q 'msg="config reloaded: ranges applied"' "$WORK/agent.log" || fail "no 'ranges applied' log line"
! grep -q 'customer="acme"' "$WORK/page.txt" || fail "the relabelled range's series are still on the page"
ok "changed ranges: 200, applied, reload_successful 1"

# SIGHUPs and POSTs at once: every POST answered 200, the agent lives on
# and ends cleanly (under TSan: no race report).
n0=$(grep -c 'msg="reload requested"' "$WORK/agent.log")
for round in $(seq 1 10); do
	# the ranges change every round: each reload swaps the tables
	if [ $((round % 2)) = 1 ]; then printf '%s' "$good"; else printf '%s' "$other"; fi >"$WORK/r.yml"
	posts=()
	for i in 1 2 3; do
		post "$RELOAD" "$WORK/c.$round.$i" -X POST >"$WORK/c.$round.$i.code" &
		posts+=($!)
	done
	kill -HUP "$PID"
	kill -HUP "$PID"
	wait "${posts[@]}"
	for i in 1 2 3; do
		[ "$(cat "$WORK/c.$round.$i.code")" = 200 ] ||
			fail "concurrent POST $round.$i: $(cat "$WORK/c.$round.$i.code")"
	done
done
kill -0 "$PID" 2>/dev/null || fail "SIGHUP and POST at once ended the agent"
n1=$(grep -c 'msg="reload requested"' "$WORK/agent.log")
page
[ "$(reload_ok)" = 1 ] || fail "after concurrent reloads: reload_successful $(reload_ok)"
ok "30 POSTs with 20 SIGHUPs at once: all 200, $((n1 - n0)) reloads run one at a time"
stop_agent agent

# Behind basic auth like every page: no credentials 401, then 200.
HASH=$(htpasswd -nbBC 10 "" s3cret | tr -d ':\n')
printf 'basic_auth_users:\n  admin: %s\n' "$HASH" >"$WORK/web.yml"
PORT=$(free_port)
start auth "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$PORT" --web.enable-lifecycle --web.config.file "$WORK/web.yml"
RELOAD="http://127.0.0.1:$PORT/-/reload"
wait_http "http://admin:s3cret@127.0.0.1:$PORT/-/healthy"
code=$(post "$RELOAD" "$WORK/a.out" -X POST)
[ "$code" = 401 ] || fail "POST /-/reload without credentials: $code, want 401"
code=$(post "$RELOAD" "$WORK/a.out" -X POST -u admin:wrong)
[ "$code" = 401 ] || fail "POST /-/reload with a wrong password: $code, want 401"
grep -q 'msg="reload requested"' "$WORK/auth.log" && fail "an unauthenticated POST reloaded"
code=$(post "$RELOAD" "$WORK/a.out" -X POST -u admin:s3cret)
[ "$code" = 200 ] || fail "POST /-/reload with credentials: $code"
ok "behind basic auth: 401 without or with wrong credentials, 200 with them"
stop_agent auth
