#!/usr/bin/env bash
# End-to-end: command-line contract. Usage errors exit 2 with one line on
# stderr naming the problem; runtime failures exit 1 with a clear message;
# --help/--version exit 0; SIGINT/SIGTERM stop the agent within a second.
. "$(dirname "$0")/lib.sh"

expect_exit() { # CODE NEEDLE ARGS...
	local code=$1 needle=$2
	shift 2
	local rc=0
	timeout 20 "$PROMACCT" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	[ "$rc" = "$code" ] || {
		cat "$WORK/err"
		fail "promacct $* exited $rc, expected $code"
	}
	grep -q -- "$needle" "$WORK/err" "$WORK/out" || {
		cat "$WORK/err"
		fail "promacct $*: output does not mention '$needle'"
	}
	ok "promacct $* -> $code ($needle)"
}

expect_exit 2 "give -i IFACE or -R FILE"
expect_exit 2 "unknown flag --nope" -i lo --nope
expect_exit 2 "increasing" -i lo --buckets 128,64
expect_exit 2 "invalid filter expression" -i lo -f 'tcp and ('
expect_exit 2 "reserved" -i lo -r '10.0.0.0/8:ip=x'
expect_exit 2 "invalid range" -i lo -r 'nonsense'
expect_exit 2 "--once needs -R FILE" -i lo --once
[ "$(timeout 20 "$PROMACCT" 2>&1 | wc -l)" = 1 ] || fail "a usage error is one line"
expect_exit 0 "usage: promacct" --help
expect_exit 0 "promacct, version" --version
expect_exit 1 "no such device" -i promacct-nope0 --web.disable
expect_exit 1 "cannot read capture file" -R "$WORK/missing.pcap" --once

# Port in use: exit 1 naming the address.
PORT=$(free_port)
"$PCAPGEN" en10mb "$WORK/a.pcap" <"$TESTDATA/links.spec"
start first "$PROMACCT" -R "$WORK/a.pcap" --web.listen-address "127.0.0.1:$PORT"
wait_http "http://127.0.0.1:$PORT/metrics"
expect_exit 1 "Address already in use" -R "$WORK/a.pcap" --web.listen-address "127.0.0.1:$PORT"

# SIGTERM and SIGINT: clean exit 0 within a second.
for sig in TERM INT; do
	p2=$(free_port)
	"$PROMACCT" -R "$WORK/a.pcap" -p "$p2" >"$WORK/sig.log" 2>&1 &
	pid=$!
	wait_http "http://127.0.0.1:$p2/metrics"
	t0=$(date +%s%N)
	kill -$sig $pid
	rc=0
	wait $pid || rc=$?
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	[ "$rc" = 0 ] || fail "SIG$sig: exit $rc"
	[ "$ms" -lt 1000 ] || fail "SIG$sig: took ${ms} ms"
	grep -q 'msg="shutting down"' "$WORK/sig.log" || fail "no shutdown log line"
	ok "SIG$sig -> exit 0 in ${ms} ms"
done

# Logs are logfmt.
grep -q '^ts=[0-9TZ:.-]* level=info msg="promacct started"' "$WORK/first.log" ||
	fail "log line is not logfmt"
ok "logfmt logs"
