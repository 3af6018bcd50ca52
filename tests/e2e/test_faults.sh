#!/usr/bin/env bash
# End-to-end fault injection (issue 10): the Pushgateway and the
# remote-write endpoint are tests/tools/fault_server instances that
#   hang     accept and never answer
#   garbage  answer bytes that are not HTTP
#   big500   answer 500 with a 50 MB body
#   close    close in the middle of the answer
#   429      answer 429 with Retry-After: 3600
#   trickle  answer one byte a second
# For each, one agent captures live on a veth pair (traffic sent from the
# test's own namespace) while pushing and remote-writing every second to the
# faulty peers. Through the fault:
#   - capture keeps counting (exactly the datagrams sent),
#   - the page keeps answering (every scrape within 2 s),
#   - RSS stays bounded (grows by less than RSS_GROWTH_MAX_KB),
#   - the log stays rate-limited (at most LOG_LINES_MAX warn/error lines),
#   - SIGTERM ends the agent with status 0 within the senders' --*.timeout
#     plus one second.
# FAULT_CASES="MODE/SENDERS ..." (SENDERS: push, rw or push+rw) picks cases.
. "$(dirname "$0")/lib.sh"

PROBLEMS=()
# A broken expectation: noted, the other checks and modes still run.
bad() {
	echo "FAIL: $*" >&2
	PROBLEMS+=("$*")
}
need_root
: "${FAULT_SERVER:?FAULT_SERVER must point to the fault_server tool}"

# Cases MODE/SENDERS: every mode with both senders at once.
CASES=${FAULT_CASES:-hang/push+rw garbage/push+rw big500/push+rw close/push+rw 429/push+rw trickle/push+rw}
RUN_SECONDS=6
TIMEOUT=3              # --push.timeout and --remote-write.timeout, seconds
RSS_GROWTH_MAX_KB=$((30 * 1024))
LOG_LINES_MAX=8

veth_netns f
veth_up 10.198.0

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

run_mode() { # MODE SENDERS
	local mode=$1 web pg rw pid before=${#PROBLEMS[@]}
	local SENDERS=" ${2/+/ } "
	web=$(free_port)
	pg=$(free_port)
	rw=$(free_port)
	start "pg-$mode" "$FAULT_SERVER" "$mode" "$pg" "$WORK/pg-$mode.req"
	start "rw-$mode" "$FAULT_SERVER" "$mode" "$rw" "$WORK/rw-$mode.req"
	local senders=()
	case " $SENDERS " in *" push "*)
		senders+=(--push.gateway "http://127.0.0.1:$pg" --push.interval 1s
			--push.timeout "${TIMEOUT}s") ;;
	esac
	case " $SENDERS " in *" rw "*)
		senders+=(--remote-write.url "http://127.0.0.1:$rw/api/v1/write"
			--remote-write.interval 1s --remote-write.timeout "${TIMEOUT}s") ;;
	esac
	start "agent-$mode" "$PROMACCT" -i "$HOST_IF" -r 10.198.0.0/24:net=fault \
		--web.listen-address "127.0.0.1:$web" "${senders[@]}"
	pid=$(cat "$WORK/agent-$mode.pid")
	local url="http://127.0.0.1:$web/metrics"
	wait_http "$url"
	sleep 1
	local rss0 peak sent=0 rss
	rss0=$(rss_kb "$pid")
	peak=$rss0
	for _ in $(seq 1 "$RUN_SECONDS"); do
		veth_send_udp 10
		sent=$((sent + 10))
		curl -fsS --max-time 2 -o "$WORK/page-$mode.txt" "$url" ||
			bad "$mode: a scrape failed or took over 2 s during the fault"
		rss=$(rss_kb "$pid")
		[ "$rss" -gt "$peak" ] && peak=$rss
		sleep 1
	done
	local series="promacct_packet_size_bytes_ipv4_tx_count{interface=\"$HOST_IF\",ip=\"10.198.0.2\",protocol=\"udp\",net=\"fault\"}"
	local got=""
	for _ in $(seq 1 20); do
		curl -fsS --max-time 2 -o "$WORK/page-$mode.txt" "$url" || true
		got=$(value_of "$WORK/page-$mode.txt" "$series")
		[ "$got" = "$sent" ] && break
		sleep 0.1
	done
	[ "$got" = "$sent" ] || bad "$mode: capture counted ${got:-nothing} of $sent datagrams"
	case " $SENDERS " in *" push "*)
		grep -q '^REQ ' "$WORK/pg-$mode.req" || bad "$mode: no push reached the fault server" ;;
	esac
	case " $SENDERS " in *" rw "*)
		grep -q '^REQ ' "$WORK/rw-$mode.req" || bad "$mode: no remote write reached the fault server" ;;
	esac
	[ $((peak - rss0)) -lt "$RSS_GROWTH_MAX_KB" ] ||
		bad "$mode: RSS grew from ${rss0} kB to ${peak} kB"
	local lines
	lines=$(grep -c -E 'level=(warn|error)' "$WORK/agent-$mode.log" || true)
	[ "$lines" -le "$LOG_LINES_MAX" ] ||
		bad "$mode: $lines warn/error log lines in ${RUN_SECONDS}s (at most $LOG_LINES_MAX)"
	local t0 t1 rc=0
	t0=$(date +%s%N)
	kill -TERM "$pid"
	# Wait at most 10 s longer than allowed, then kill -9 (and say so).
	local limit=$((SECONDS + TIMEOUT + 11))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $limit ]; do
		sleep 0.05
	done
	t1=$(date +%s%N)
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		bad "$mode: still running $((TIMEOUT + 11)) s after SIGTERM (killed)"
	fi
	wait "$pid" || rc=$?
	local ms=$(((t1 - t0) / 1000000))
	[ "$rc" = 0 ] || [ "$rc" = 137 ] || bad "$mode: exit status $rc after SIGTERM"
	[ "$ms" -le $(((TIMEOUT + 1) * 1000)) ] ||
		bad "$mode: SIGTERM took ${ms} ms (timeouts ${TIMEOUT}s)"
	stop "pg-$mode"
	stop "rw-$mode"
	local verdict=ok
	[ "${#PROBLEMS[@]}" -eq "$before" ] || verdict="with problems"
	echo "$verdict: $mode ($2): captured $sent/$sent, page up, RSS ${rss0}->${peak} kB, $lines log lines, exit in ${ms} ms"
}

for c in $CASES; do
	run_mode "${c%/*}" "${c#*/}"
done
if [ "${#PROBLEMS[@]}" -gt 0 ]; then
	fail "${#PROBLEMS[@]} broken expectations (listed above)"
fi
