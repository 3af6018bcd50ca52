#!/usr/bin/env bash
# End-to-end (issue 9, privilege drop): after the capture handles and the
# listening socket are open, --user switches user and group in every thread
# and no thread keeps a capability except the capture threads, which keep
# CAP_NET_RAW only when they reopen interfaces (and do reopen a veth that is
# deleted and created again). A binary with file capabilities run as nobody
# (the setcap deployment) sheds them the same way. Checked in
# /proc/PID/task/*/status.
. "$(dirname "$0")/lib.sh"
need_root

# A subnet of its own per run (the host side sits in the shared root
# namespace, where parallel runs must not share addresses).
NET=10.$((100 + $$ % 100)).197
veth_netns p
SERIES="promacct_packet_size_bytes_ipv4_tx_count{interface=\"$HOST_IF\",ip=\"$NET.2\",protocol=\"udp\"}"

# threads PID: one line per thread: NAME UID(4) GID(4) CAPPRM CAPEFF
threads() {
	for t in /proc/"$1"/task/*; do
		awk -v n="$(cat "$t/comm")" '
			/^Uid:/ { u = $2 " " $3 " " $4 " " $5 }
			/^Gid:/ { g = $2 " " $3 " " $4 " " $5 }
			/^CapPrm:/ { p = $2 } /^CapEff:/ { e = $2 }
			END { print n, u, g, p, e }' "$t/status"
	done
}

# check_threads PID NAME UID GID CAPTURE_CAPS: every thread runs as UID/GID;
# capture threads hold exactly CAPTURE_CAPS, every other thread nothing.
check_threads() {
	threads "$1" >"$WORK/$2.threads"
	awk -v uid="$3" -v gid="$4" -v cc="$5" '
		{ want = $1 == "capture" ? cc : "0000000000000000"; ncap += $1 == "capture" }
		$2 != uid || $3 != uid || $4 != uid || $5 != uid { print "uid: " $0; bad = 1 }
		$6 != gid || $7 != gid || $8 != gid || $9 != gid { print "gid: " $0; bad = 1 }
		$10 != want || $11 != want { print "caps: " $0; bad = 1 }
		END { if (ncap == 0) { print "no capture thread"; bad = 1 } exit bad }' \
		"$WORK/$2.threads" || { cat "$WORK/$2.threads"; fail "$2: threads keep privileges"; }
}

NOBODY=$(id -u nobody)
NOGROUP=$(id -g nobody)
RAW=0000000000002000 # CAP_NET_RAW

veth_up $NET
port=$(free_port)
start agent "$PROMACCT" -i "$HOST_IF" -r $NET.0/24 --capture-threads 2 --user nobody \
	--web.listen-address "127.0.0.1:$port" --interface.reopen-interval 200ms
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
pid=$(cat "$WORK/agent.pid")
check_threads "$pid" user "$NOBODY" "$NOGROUP" "$RAW"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail "no_new_privs not set"
# Every thread, also those made before the drop (review finding 6: the
# signal thread and the scrape server's threads had NoNewPrivs 0).
for t in /proc/"$pid"/task/*; do
	grep -q '^NoNewPrivs:[[:space:]]*1' "$t/status" ||
		fail "thread $(cat "$t/comm") ($(basename "$t")) runs without no_new_privs"
done
grep -q 'msg="privileges dropped"' "$WORK/agent.log" || fail "the drop is not logged"
sleep 0.3
veth_send_udp 10
wait_value "$url" "$SERIES" 10
# CAP_NET_RAW is enough to reopen an interface that comes back.
ip link del "$HOST_IF"
wait_value "$url" "promacct_interface_up{interface=\"$HOST_IF\"}" 0
veth_up $NET
wait_value "$url" "promacct_interface_up{interface=\"$HOST_IF\"}" 1
sleep 0.3
veth_send_udp 5
wait_value "$url" "$SERIES" 15
check_threads "$pid" user-after "$NOBODY" "$NOGROUP" "$RAW"
stop_agent agent
ok "--user nobody: every thread nobody, only capture threads keep CAP_NET_RAW, reopening works"

# No reopening: nothing is kept anywhere; --group is honoured.
port=$(free_port)
start agent0 "$PROMACCT" -i "$HOST_IF" --user nobody --group "$NOGROUP" \
	--web.listen-address "127.0.0.1:$port" --interface.reopen-interval 0
wait_http "http://127.0.0.1:$port/metrics"
check_threads "$(cat "$WORK/agent0.pid")" noreopen "$NOBODY" "$NOGROUP" 0000000000000000
stop_agent agent0
ok "--interface.reopen-interval 0: no capability left"

# An unknown user is an error before anything runs.
rc=0
"$PROMACCT" -i "$HOST_IF" --user promacct-no-such-user --web.disable 2>"$WORK/nouser.log" || rc=$?
[ "$rc" = 1 ] || fail "unknown user: exit status $rc, want 1"
grep -q "unknown user 'promacct-no-such-user'" "$WORK/nouser.log" || fail "unknown user not named"
ok "unknown user refused"

# The setcap deployment: a copy of the binary with file capabilities, run
# as nobody, sheds CAP_NET_ADMIN everywhere and CAP_NET_RAW outside the
# capture threads. (Not under ThreadSanitizer, which re-executes itself.)
if command -v setcap >/dev/null && ! grep -q __tsan_init "$PROMACCT"; then
	chmod 755 "$WORK"
	cp "$PROMACCT" "$WORK/promacct-caps"
	setcap cap_net_raw,cap_net_admin=eip "$WORK/promacct-caps"
	port=$(free_port)
	start agentcap setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
		"$WORK/promacct-caps" -i "$HOST_IF" --capture-threads 2 \
		--web.listen-address "127.0.0.1:$port"
	wait_http "http://127.0.0.1:$port/metrics"
	check_threads "$(cat "$WORK/agentcap.pid")" setcap "$NOBODY" "$NOGROUP" "$RAW"
	stop_agent agentcap
	ok "file capabilities as nobody: shed after start-up"
fi
