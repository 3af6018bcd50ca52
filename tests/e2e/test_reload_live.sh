#!/usr/bin/env bash
# End-to-end (issue 8 reload): a reload applies changed ranges to live
# capture (a veth pair whose other end sits in a namespace of this test)
# without stopping it. Datagrams from the namespace's $NET.2 go to $NET.5,
# .6 and .7 (the namespace has neighbour entries for them, so they go out
# on the pair; the host owns none of them and answers nothing).
#   before: $NET.2/32 keep, $NET.5/32 customer=old, $NET.6/32 customer=gone
#   after:  $NET.2/32 keep, $NET.5/32 customer=new, $NET.7/32 customer=added
# The unchanged range's counters only grow across the reload; the
# relabelled and the removed range's series leave the page, the next
# Pushgateway PUT and remote write (stale markers); the relabelled and the
# new range count from zero; a bad file changes nothing (gauge 0).
. "$(dirname "$0")/lib.sh"
need_root
: "${RW_RECEIVER:?}"

NET=10.196.$(($$ % 250))
veth_netns r
veth_up "$NET"
mac=$(cat "/sys/class/net/$HOST_IF/address")
for h in 5 6 7; do
	ip netns exec "$NS" ip neigh replace "$NET.$h" lladdr "$mac" dev "$NS_IF"
done
# send COUNT HOST: COUNT datagrams of 100 bytes from $NET.2 to $NET.HOST
send() {
	ip netns exec "$NS" bash -c \
		"for i in \$(seq 1 $1); do printf '%100s' x >/dev/udp/$NET.$2/9; done"
}

cfg_before="ranges:
  - prefix: $NET.2/32
    labels: {customer: keep}
  - prefix: $NET.5/32
    labels: {customer: old}
  - prefix: $NET.6/32
    labels: {customer: gone}
"
cfg_after="ranges:
  - prefix: $NET.2/32
    labels: {customer: keep}
  - prefix: $NET.5/32
    labels: {customer: new}
  - prefix: $NET.7/32
    labels: {customer: added}
"
printf '%s' "$cfg_before" >"$WORK/r.yml"

RP=$(free_port)
start recv "$RW_RECEIVER" "$RP" "$WORK/recv.events"
GP=$(free_port)
start_pushgateway gw "$GP"
GW="http://127.0.0.1:$GP"
wait_http "$GW/metrics"
port=$(free_port)
start agent "$PROMACCT" -i "$HOST_IF" --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$port" --remote-write.url "http://127.0.0.1:$RP/push" \
	--remote-write.interval 200ms --push.gateway "$GW" --push.interval 200ms
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
PID=$(cat "$WORK/agent.pid")
sleep 0.3

# the count series of an address: DIR (tx, rx) IP CUSTOMER
series() {
	printf 'promacct_packet_size_bytes_ipv4_%s_count{interface="%s",ip="%s",protocol="udp",customer="%s"}' \
		"$1" "$HOST_IF" "$2" "$3"
}
keep=$(series tx "$NET.2" keep)
old=$(series rx "$NET.5" old)
gone=$(series rx "$NET.6" gone)
new=$(series rx "$NET.5" new)
added=$(series rx "$NET.7" added)
# expect SERIES VALUE: waits up to 3 s for the page to show it
expect() {
	for _ in $(seq 1 60); do
		curl -fsS "$url" >"$WORK/page.txt"
		[ "$(value_of "$WORK/page.txt" "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	fail "$1 is '$(value_of "$WORK/page.txt" "$1")', want $2"
}
hup() { # EXPECTED-LOG-TEXT
	local n
	n=$(grep -c -- "$1" "$WORK/agent.log" || true)
	kill -HUP "$PID"
	for _ in $(seq 1 100); do
		[ "$(grep -c -- "$1" "$WORK/agent.log" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	[ "$(grep -c -- "$1" "$WORK/agent.log" || true)" -gt "$n" ] || fail "no log line '$1' after SIGHUP"
	kill -0 "$PID" 2>/dev/null || fail "SIGHUP ended the agent"
	curl -fsS "$url" >"$WORK/page.txt"
}
reload_ok() { value_of "$WORK/page.txt" promacct_config_last_reload_successful; }

send 10 5
send 10 6
expect "$keep" 20
expect "$old" 10
expect "$gone" 10
for _ in $(seq 1 30); do
	curl -fsS "$GW/metrics" >"$WORK/gw_before.txt"
	grep -q 'customer="gone"' "$WORK/gw_before.txt" && grep -q 'customer="old"' "$WORK/gw_before.txt" && break
	sleep 0.1
done
grep -q 'customer="gone"' "$WORK/gw_before.txt" || fail "the removed range never reached the Pushgateway"
ok "before: keep 20, old 10, gone 10 datagrams"

printf '%s' "$cfg_after" >"$WORK/r.yml"
hup 'msg="config reloaded: ranges applied"'
[ "$(reload_ok)" = 1 ] || fail "changed ranges: reload_successful $(reload_ok)"
v=$(value_of "$WORK/page.txt" "$keep")
[ "${v:-0}" -ge 20 ] || fail "the unchanged range's counter went from 20 to '$v' across the reload"
grep -q 'customer="old"' "$WORK/page.txt" && fail "the relabelled range's old series are still on the page"
grep -q 'customer="gone"' "$WORK/page.txt" && fail "the removed range's series are still on the page"
promtool check metrics <"$WORK/page.txt" || fail "promtool on the page after the reload"
grep 'msg="config reloaded: ranges applied"' "$WORK/agent.log" | grep -q 'keys_ended=2 stale_markers_lost=0 threads_moved=yes' ||
	fail "the reload's log line does not say the 2 keys it ended: $(grep 'ranges applied' "$WORK/agent.log")"
ok "reload with changed ranges: successful; unchanged counter kept (20), old and removed series gone"

send 3 5
send 4 7
send 2 6
expect "$keep" 29
expect "$new" 3
expect "$added" 4
grep -q "ip=\"$NET.6\"" "$WORK/page.txt" && fail "an address of the removed range is counted"
ok "after: keep grew to 29, the relabelled range counts from zero (3), the new one counts (4)"

for _ in $(seq 1 30); do
	curl -fsS "$GW/metrics" >"$WORK/gw.txt"
	grep -q 'customer="added"' "$WORK/gw.txt" && ! grep -q 'customer="old"\|customer="gone"' "$WORK/gw.txt" && break
	sleep 0.1
done
grep -q 'customer="old"\|customer="gone"' "$WORK/gw.txt" && fail "the ended series are still on the Pushgateway"
grep -q 'customer="added"' "$WORK/gw.txt" || fail "the new range never reached the Pushgateway"
ok "the next Pushgateway PUT has the new series and not the ended ones"

# Remote write: stale markers for every sample series of both ended ranges.
base="instance=$(hostname),interface=$HOST_IF"
stale() { # SERIES-KEY
	awk -F'\t' -v s="$1" '$1 == "S" && $2 == s && $4 == "stale" { f = 1 } END { exit !f }' \
		"$WORK/recv.events"
}
S_old="__name__=promacct_packet_size_bytes_ipv4_rx_count,customer=old,$base,ip=$NET.5,job=promacct,protocol=udp"
S_gone="__name__=promacct_packet_size_bytes_ipv4_rx_count,customer=gone,$base,ip=$NET.6,job=promacct,protocol=udp"
for _ in $(seq 1 30); do
	stale "$S_old" && stale "$S_gone" && break
	sleep 0.1
done
stale "$S_old" || fail "no stale marker for the relabelled range's series over remote write"
stale "$S_gone" || fail "no stale marker for the removed range's series over remote write"
for le in 64 128 256 512 1024 2048 +Inf; do
	stale "__name__=promacct_packet_size_bytes_ipv4_rx_bucket,customer=gone,$base,ip=$NET.6,job=promacct,le=$le,protocol=udp" ||
		fail "no stale marker for the removed range's bucket le=$le"
done
S_keep="__name__=promacct_packet_size_bytes_ipv4_tx_count,customer=keep,$base,ip=$NET.2,job=promacct,protocol=udp"
stale "$S_keep" && fail "the unchanged range's series got a stale marker"
awk -F'\t' -v s="$S_keep" '$1 == "S" && $2 == s { if ($4 < prev) bad = 1; prev = $4 }
	END { exit bad }' "$WORK/recv.events" || fail "the unchanged range's counter went down on the wire"
grep -q 'R 400' "$WORK/recv.events" && fail "the receiver rejected a request"
ok "remote write: stale markers for the ended series, the unchanged counter never went down"

printf 'ranges:\n  - prefix: %s.0/99\n' "$NET" >"$WORK/r.yml"
hup 'msg="config reload failed: the running configuration is kept"'
[ "$(reload_ok)" = 0 ] || fail "a bad file: reload_successful $(reload_ok)"
[ "$(value_of "$WORK/page.txt" "$new")" = 3 ] || fail "a bad file changed the running ranges"
[ "$(value_of "$WORK/page.txt" "$keep")" = 29 ] || fail "a bad file changed the running counters"
send 1 5
expect "$new" 4
ok "a bad file: reload_successful 0, ranges and counters kept, capture goes on"
stop_agent agent
