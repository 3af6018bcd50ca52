#!/usr/bin/env bash
# End-to-end: SIGHUP (systemctl reload) never ends the agent and tells the
# truth about the configuration file (issue 8 reload, review finding 5).
# The file is read and checked again: a file that does not load sets
# promacct_config_last_reload_successful to 0 and is logged; the running
# ranges stay. An unchanged file, a changed one (applied live: the series
# of a relabelled range end, see test_reload_live), or no file, is a
# successful reload.
. "$(dirname "$0")/lib.sh"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
good='ranges:
  - prefix: 10.0.0.0/8
    labels: {customer: acme}
'
printf '%s' "$good" >"$WORK/r.yml"
PORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT/metrics"
wait_http "$URL"
PID=$(cat "$WORK/agent.pid")
page() { curl -fsS "$URL" >"$WORK/page.txt"; }
reload_ok() { value_of "$WORK/page.txt" promacct_config_last_reload_successful; }
reload_ts() { value_of "$WORK/page.txt" promacct_config_last_reload_success_timestamp_seconds; }
hup() { # EXPECTED-LOG-TEXT
	local n
	n=$(grep -c -- "$1" "$WORK/agent.log" || true)
	kill -HUP "$PID"
	for _ in $(seq 1 100); do
		[ "$(grep -c -- "$1" "$WORK/agent.log" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	grep -q -- "$1" "$WORK/agent.log" || fail "no log line '$1' after SIGHUP"
	kill -0 "$PID" 2>/dev/null || fail "SIGHUP ended the agent"
	page
}

page
[ "$(reload_ok)" = 1 ] || fail "promacct_config_last_reload_successful is '$(reload_ok)' at start"
ts0=$(reload_ts)
[ -n "$ts0" ] || fail "no promacct_config_last_reload_success_timestamp_seconds"
grep -q 'customer="acme"' "$WORK/page.txt" || fail "the file's range is not in use"

sleep 1.1
hup 'msg="config reloaded: ranges unchanged"'
[ "$(reload_ok)" = 1 ] || fail "an unchanged file: reload_successful $(reload_ok)"
awk -v a="$(reload_ts)" -v b="$ts0" 'BEGIN { exit !(a > b) }' || fail "success timestamp did not advance"
ok "SIGHUP with the file unchanged: reload successful, timestamp advanced"

printf 'ranges:\n  - prefix: 10.0.0.0/99\n' >"$WORK/r.yml"
hup 'msg="config reload failed: the running configuration is kept"'
[ "$(reload_ok)" = 0 ] || fail "a bad file: reload_successful $(reload_ok)"
grep 'config reload failed' "$WORK/agent.log" | grep -q "r.yml:2:" || fail "the error does not name FILE:LINE"
grep -q 'customer="acme"' "$WORK/page.txt" || fail "a bad file changed the running ranges"
ok "SIGHUP with a bad file: logged with FILE:LINE, reload_successful 0, ranges kept"

: >"$WORK/r.yml" # truncated while it is written
hup 'r.yml: no configuration in it'
[ "$(reload_ok)" = 0 ] || fail "an empty file: reload_successful $(reload_ok)"
grep -q 'customer="acme"' "$WORK/page.txt" || fail "an empty file ended the running ranges"
ok "SIGHUP with an empty file: refused, reload_successful 0, ranges kept"

printf 'ranges:\n  - prefix: 10.0.0.0/8\n    labels: {customer: initech}\n' >"$WORK/r.yml"
hup 'msg="config reloaded: ranges applied"'
[ "$(reload_ok)" = 1 ] || fail "changed ranges: reload_successful $(reload_ok)"
! grep -q 'customer="acme"' "$WORK/page.txt" || fail "the relabelled range's series are still on the page"
ok "SIGHUP with a relabelled range (file read to its end): applied, reload_successful 1, its series gone"

printf '%s' "$good" >"$WORK/r.yml"
hup 'msg="config reloaded: ranges applied"'
[ "$(reload_ok)" = 1 ] || fail "back to the first file: reload_successful $(reload_ok)"
! grep -q 'ip=.*customer="acme"' "$WORK/page.txt" || fail "a label set that returns kept its old series"
ok "the first file again: applied; its old series do not return (they start from zero)"
stop_agent agent

# Without --config.file, SIGHUP is harmless and a successful reload.
PORT=$(free_port)
start plain "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --web.listen-address "127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT/metrics"
wait_http "$URL"
PID=$(cat "$WORK/plain.pid")
kill -HUP "$PID"
sleep 0.3
kill -0 "$PID" 2>/dev/null || fail "SIGHUP ended an agent without --config.file"
grep -q 'msg="nothing to reload: no --config.file"' "$WORK/plain.log" || fail "no log line for SIGHUP"
page
[ "$(reload_ok)" = 1 ] || fail "no file: reload_successful $(reload_ok)"
ok "SIGHUP without --config.file: logged, harmless"
stop_agent plain
