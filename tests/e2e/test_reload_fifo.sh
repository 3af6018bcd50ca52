#!/usr/bin/env bash
# End-to-end (issue 8 review): --config.file naming a FIFO (or anything but
# a regular file) is an error, never a blocked open(). At start-up: exit 2
# at once, "not a regular file (a FIFO)". On reload (SIGHUP, then POST
# /-/reload): logged, 500, promacct_config_last_reload_successful 0, the
# running ranges kept; the main thread is free, so SIGTERM ends the agent
# at the first signal. (Before: open() waited for a writer on the main
# thread; POSTs hung and the first SIGTERM did not end the agent.)
. "$(dirname "$0")/lib.sh"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"

# At start-up.
mkfifo "$WORK/fifo.yml"
rc=0
timeout -k 1 5 "$PROMACCT" -R "$WORK/eth.pcap" --once --config.file "$WORK/fifo.yml" \
	>/dev/null 2>"$WORK/startup.log" || rc=$?
[ "$rc" = 2 ] || fail "start-up with a FIFO: exit $rc, want 2 (124 or 137: open() blocked)"
grep -q "fifo.yml: not a regular file (a FIFO)" "$WORK/startup.log" ||
	fail "start-up error: $(cat "$WORK/startup.log")"
rc=0
timeout -k 1 5 "$PROMACCT" -R "$WORK/eth.pcap" --once --config.file "$WORK" \
	>/dev/null 2>"$WORK/startup.log" || rc=$?
[ "$rc" = 2 ] && grep -q "not a regular file (a directory)" "$WORK/startup.log" ||
	fail "start-up with a directory: exit $rc, $(cat "$WORK/startup.log")"
ok "start-up: a FIFO or a directory as --config.file is exit 2, 'not a regular file'"

printf 'ranges:\n  - prefix: 10.0.0.0/8\n    labels: {customer: acme}\n' >"$WORK/r.yml"
PORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$PORT" --web.enable-lifecycle
URL="http://127.0.0.1:$PORT/metrics"
wait_http "$URL"
PID=$(cat "$WORK/agent.pid")
# a failure below may leave the agent hung: do not wait for it forever
die() {
	kill -9 "$PID" 2>/dev/null || true
	fail "$@"
}

rm "$WORK/r.yml"
mkfifo "$WORK/r.yml"
kill -HUP "$PID"
for _ in $(seq 1 50); do
	grep -q 'msg="config reload failed' "$WORK/agent.log" && break
	sleep 0.1
done
grep 'msg="config reload failed' "$WORK/agent.log" | grep -q 'r.yml: not a regular file (a FIFO)' ||
	die "SIGHUP with a FIFO: no 'not a regular file' reload error within 5 s"
code=$(curl -sS -o "$WORK/r.out" -w '%{http_code}' --max-time 5 -X POST \
	"http://127.0.0.1:$PORT/-/reload" || true)
[ "$code" = 500 ] || die "POST /-/reload with a FIFO: '$code', want 500 within 5 s"
grep -q 'not a regular file (a FIFO)' "$WORK/r.out" || die "500 body: $(cat "$WORK/r.out")"
curl -fsS --max-time 5 "$URL" >"$WORK/page.txt" || die "page"
[ "$(value_of "$WORK/page.txt" promacct_config_last_reload_successful)" = 0 ] ||
	die "reload_successful is not 0 after a FIFO reload"
grep -q 'customer="acme"' "$WORK/page.txt" || die "the running ranges changed"
ok "reload with a FIFO (SIGHUP, POST): logged, 500 at once, reload_successful 0, ranges kept"

kill -TERM "$PID"
for _ in $(seq 1 100); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$PID" 2>/dev/null && die "the first SIGTERM did not end the agent within 10 s"
rc=0
wait "$PID" || rc=$?
[ "$rc" = 0 ] || fail "agent exited with status $rc after SIGTERM"
ok "the first SIGTERM ends the agent (status 0)"
