#!/usr/bin/env bash
# End-to-end remote write: real Prometheus (--web.enable-remote-write-receiver)
# and real VictoriaMetrics return what --once prints and what the scrape page
# shows; a strict receiver checks the wire format, retries on 5xx/429 (with
# Retry-After), no retry on 400, an outage without gaps and with bounded
# memory, and stale markers on shutdown.
. "$(dirname "$0")/lib.sh"
: "${RW_RECEIVER:?}"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
RANGES=(-r '10.0.0.0/30:customer=a' -r 10.0.0.0/8:customer=b -r '[2001:db8::]-[2001:db8::ffff]:site=x')
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" >"$WORK/once.out" 2>/dev/null
# What a receiver should hold: the page without run-to-run lines (an empty
# range label value is refused at start-up: none to drop here).
normalize <(stable "$WORK/once.out") >"$WORK/once.norm"
# samples of the page, plus the 9 remote-write self-metrics of one endpoint
NSAMPLES=$(($(grep -vc '^#' "$WORK/once.out") + 9))

PPORT=$(free_port)
start_prometheus prom "$PPORT"
VPORT=$(free_port)
start_victoria vm "$VPORT"
PROM="http://127.0.0.1:$PPORT"
VM="http://127.0.0.1:$VPORT"
wait_http "$PROM/-/ready" 60
wait_http "$VM/health" 60

# 1. --once into both real receivers: their query APIs return the page.
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --remote-write.url "$PROM/api/v1/write" \
	--remote-write.url "$VM/api/v1/write" --remote-write.external-label dc=ams1 \
	2>"$WORK/once-rw.log" || fail "--once remote write failed"
curl -fsS "$VM/internal/force_flush" >/dev/null
for target in prometheus:$PROM victoria-metrics:$VM; do
	name=${target%%:*}
	url=${target#*:}
	for _ in $(seq 1 50); do
		query_all "$url" "job instance dc" | grep -v -e promacct_start_time -e promacct_build_info \
			-e promacct_remote_write_ >"$WORK/$name.norm" || true
		[ "$(wc -l <"$WORK/$name.norm")" -ge "$(wc -l <"$WORK/once.norm")" ] && break
		sleep 0.2
	done
	grep -v -e promacct_remote_write_ "$WORK/once.norm" >"$WORK/once-rw.norm"
	diff -u "$WORK/once-rw.norm" "$WORK/$name.norm" || fail "$name differs from --once"
	ok "$name holds the --once values ($(wc -l <"$WORK/$name.norm") series)"
done
# (into a file first: with pipefail, grep -q quitting early would fail the
# pipeline through SIGPIPE)
query_all "$PROM" >"$WORK/prom-all.txt"
grep -q "instance=\"$(hostname)\",interface=\"eth.pcap\",ip=\"10.0.0.1\",job=\"promacct\"" \
	"$WORK/prom-all.txt" || fail "job/instance labels missing"

# 2. The strict receiver: headers, block snappy, sorted labels, batches.
recv() { # NAME PORT [PLAN]: starts the strict receiver, prints its port
	start "$1" "$RW_RECEIVER" "$2" "$WORK/$1.events" ${3:+"$3"}
	for _ in $(seq 1 50); do
		[ -s "$WORK/$1.log" ] && break
		sleep 0.05
	done
	head -n1 "$WORK/$1.log"
}
check_monotonic() { # EVENTS: per-series timestamps strictly increase
	awk -F'\t' '$1 == "S" { if (($2 in last) && $3 <= last[$2]) { print "not increasing: " $0; bad = 1 }
		last[$2] = $3 } END { exit bad }' "$1" || fail "timestamps not strictly increasing"
}
RP=$(recv strict "$(free_port)")
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.max-samples-per-send 50 --remote-write.header 'X-Scope-OrgID: tenant-1' \
	2>"$WORK/strict-run.log" || fail "strict receiver: --once failed"
E="$WORK/strict.events"
! grep '^V ' "$E" || fail "wire-format violations"
awk '$1 == "R" && $3 > 50 { exit 1 }' "$E" || fail "a request over max-samples-per-send"
[ "$(grep -c '^S' "$E")" = "$NSAMPLES" ] || fail "expected $NSAMPLES samples, got $(grep -c '^S' "$E")"
grep -q '^H X-Scope-OrgID: tenant-1' "$E" || fail "tenant header not sent"
ok "strict receiver: $NSAMPLES samples in $(grep -c '^R ' "$E") requests, headers and labels valid"
stop strict

rc=0
"$PROMACCT" -R "$WORK/eth.pcap" --once --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.header 'Content-Type: text/plain' 2>"$WORK/override.log" || rc=$?
[ "$rc" = 1 ] && grep -q 'cannot be overridden' "$WORK/override.log" || fail "protocol header overridable"
ok "protocol headers cannot be overridden"

# 3. Retries: 500, 503 and 429 (Retry-After: 1) then success; nothing lost
#    and nothing sent twice (one shard, so the answers meet one request).
RP=$(recv retry "$(free_port)" "500,503,429:1")
t0=$(date +%s%N)
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.timeout 20s --remote-write.max-shards 1 2>"$WORK/retry-run.log" ||
	fail "retries: --once failed"
ms=$((($(date +%s%N) - t0) / 1000000))
E="$WORK/retry.events"
[ "$(awk '$1 == "R" { printf "%s ", $2 }' "$E")" = "500 503 429 200 " ] || fail "retry sequence: $(grep '^R' "$E")"
[ "$(grep -c '^S' "$E")" = "$NSAMPLES" ] || fail "samples lost or duplicated"
[ "$ms" -ge 1000 ] || fail "Retry-After not honoured (${ms} ms)"
check_monotonic "$E"
ok "5xx and 429 retried with back-off and Retry-After (${ms} ms), every sample once"
stop retry

# 4. 400 is not retried: the batch is dropped, logged, and --once fails.
RP=$(recv reject "$(free_port)" "400")
rc=0
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.max-samples-per-send 100 2>"$WORK/reject-run.log" || rc=$?
E="$WORK/reject.events"
[ "$rc" = 1 ] || fail "400: exit $rc"
[ "$(grep -c '^R 400' "$E")" = 1 ] || fail "400 was retried"
grep -q 'msg="remote write rejected, samples dropped".*status=400.*body="injected' "$WORK/reject-run.log" ||
	fail "rejection not logged with the body"
ok "400 dropped without retry, logged with the body"
stop reject

# 5. Live: the receiver is down for 3 s; no gap afterwards, timestamps
#    strictly increasing, stale markers on shutdown.
RP=$(recv outage "$(free_port)")
stop outage
SPORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 500ms --remote-write.max-backoff 500ms --web.listen-address "127.0.0.1:$SPORT"
sleep 3
start outage "$RW_RECEIVER" "$RP" "$WORK/outage.events"
sleep 3
curl -fsS "http://127.0.0.1:$SPORT/metrics" >"$WORK/agent.page"
stop_agent agent
E="$WORK/outage.events"
! grep '^V ' "$E" || fail "violations during outage"
check_monotonic "$E"
S='__name__=promacct_packet_size_bytes_all_count,instance='$(hostname)',interface=eth.pcap,job=promacct'
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 != "stale" { print $3 }' "$E" >"$WORK/ts"
n=$(wc -l <"$WORK/ts")
[ "$n" -ge 9 ] || fail "only $n snapshots of a series arrived"
gap=$(awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { print m + 0 }' "$WORK/ts")
[ "$gap" -le 1000 ] || fail "a gap of $gap ms in the series"
awk -F'\t' -v s="$S" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' "$E" ||
	fail "no stale marker on shutdown"
ok "outage: $n snapshots, largest step ${gap} ms, stale markers on shutdown"
grep -q '^promacct_remote_write_samples_total{url=.*result="sent"} [1-9]' "$WORK/agent.page" ||
	fail "remote write self-metrics"

# 6. Bounded queue, receiver hanging: beyond --remote-write.queue-max-samples
#    the oldest are dropped and counted; the log says so once when it starts
#    and once, with counts, at the end (issue 13 defect 10: it was one line
#    per request, 64,132 lines in 50 s); SIGTERM ends the agent within the
#    timeout although every request hangs.
RP=$(recv bounded "$(free_port)" "hang+")
SPORT=$(free_port)
start agent2 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 100ms --remote-write.queue-max-samples 300 --remote-write.timeout 1s \
	--web.listen-address "127.0.0.1:$SPORT"
sleep 3
curl -fsS "http://127.0.0.1:$SPORT/metrics" >"$WORK/agent2.page"
q=$(awk '/^promacct_remote_write_queue_samples/ { print $2 }' "$WORK/agent2.page")
d=$(awk '/^promacct_remote_write_samples_total.*result="dropped"/ { print $2 }' "$WORK/agent2.page")
[ "${q%.*}" -le 300 ] || fail "queue holds $q samples, bound 300"
[ "${d%.*}" -gt 0 ] || fail "nothing counted as dropped"
t0=$(date +%s%N)
stop_agent agent2
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -le 3500 ] || fail "SIGTERM with a hanging receiver took ${ms} ms (timeout 1s)"
n=$(grep -c 'msg="remote-write queue full' "$WORK/agent2.log" || true)
[ "$n" = 1 ] || fail "queue full logged $n times, want once per change of state"
grep -q 'msg="remote-write queue was full until the end".*dropped_samples=[1-9]' "$WORK/agent2.log" ||
	fail "the drops were not summed up in the log"
ok "queue bounded at 300 samples ($q queued, $d dropped), logged once, SIGTERM in ${ms} ms"
stop bounded

# 6b. Issue 13 defect 8: a receiver answering 429 with Retry-After: 60 kept
#     the agent 58 s after SIGTERM with --remote-write.timeout 3s. Every wait
#     and request now ends at the shutdown deadline (the timeout).
RP=$(recv slow429 "$(free_port)" "429:60+")
start agent4 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 500ms --remote-write.timeout 3s --web.disable
for _ in $(seq 1 100); do
	grep -q '^R 429' "$WORK/slow429.events" 2>/dev/null && break
	sleep 0.1
done
grep -q '^R 429' "$WORK/slow429.events" || fail "no 429 answered"
sleep 0.5
t0=$(date +%s%N)
stop_agent agent4
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -le 5000 ] || fail "SIGTERM during Retry-After: 60 took ${ms} ms (timeout 3s)"
ok "SIGTERM during a 60 s Retry-After: exit in ${ms} ms (timeout 3s)"
stop slow429

# 6c. A start-up that fails (the scrape port is in use: the receiver's own)
#     sends nothing: no final snapshot, no stale markers (issue 13 item 2,
#     remote-write side).
RP=$(recv nostart "$(free_port)")
rc=0
timeout 20 "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --remote-write.url "http://127.0.0.1:$RP/push" \
	--web.listen-address "127.0.0.1:$RP" 2>"$WORK/nostart-run.log" || rc=$?
[ "$rc" = 1 ] || fail "agent on a used port exited $rc, expected 1"
sleep 0.3
[ -z "$(grep '^R ' "$WORK/nostart.events" || true)" ] || fail "an agent that failed to start wrote: $(head -n3 "$WORK/nostart.events")"
ok "a failed start-up sends no remote write (no final values, no stale markers)"
stop nostart

# 7. Live mode into the real receivers: they return what the scrape page
#    shows (the file is read, so the values stand still).
SPORT=$(free_port)
start agent3 "$PROMACCT" -R "$WORK/eth.pcap" "${RANGES[@]}" --remote-write.url "$PROM/api/v1/write" \
	--remote-write.url "$VM/api/v1/write" --remote-write.interval 500ms \
	--remote-write.external-label dc=live --web.listen-address "127.0.0.1:$SPORT"
sleep 2
curl -fsS "$VM/internal/force_flush" >/dev/null
curl -fsS "http://127.0.0.1:$SPORT/metrics" >"$WORK/live.page"
SELF='promacct_remote_write_|promacct_http_|promacct_start_time|promacct_build_info|promacct_config_last_reload_'
normalize <(stable "$WORK/live.page") | grep -Ev "$SELF" >"$WORK/live.norm"
for target in prometheus:$PROM victoria-metrics:$VM; do
	name=${target%%:*}
	url=${target#*:}
	query_all "$url" "job instance dc" 'dc="live"' | grep -Ev "$SELF" >"$WORK/$name.live" || true
	diff -u "$WORK/live.norm" "$WORK/$name.live" || fail "$name differs from the live scrape page"
	ok "$name equals the live scrape page ($(wc -l <"$WORK/$name.live") series)"
done
stop_agent agent3
