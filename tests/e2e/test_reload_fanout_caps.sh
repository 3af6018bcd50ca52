#!/usr/bin/env bash
# End-to-end (issue 8 review): with --capture-threads 2 (PACKET_FANOUT, the
# threads of the interface share one address set for the caps), a reload
# moves the caps as with one thread. Datagrams from the namespace's $NET.2
# go to 10 addresses (the namespace has neighbour entries for them; the
# host owns none and answers nothing).
#   1. $NET.16/28 customer=b, no cap: .17-.26 each get a series (10 held)
#   2. relabelled customer=a, max_addresses 2: the same 10 again are new
#      keys of a: 2 series, 8 datagrams in a's ip="other" (was: 10 series,
#      a's tracked keys 0)
#   3. a renumbered to $NET.32/28 (same labels and cap): .33-.42: 2 new
#      series, 8 more in ip="other" (was: all 10, the ended addresses kept
#      a's cap until a restart)
. "$(dirname "$0")/lib.sh"
need_root

NET=10.197.$(($$ % 250))
veth_netns f
veth_up "$NET"
mac=$(cat "/sys/class/net/$HOST_IF/address")
for h in $(seq 17 26) $(seq 33 42); do
	ip netns exec "$NS" ip neigh replace "$NET.$h" lladdr "$mac" dev "$NS_IF"
done
# send FIRST: one datagram of 100 bytes from $NET.2 to each of $NET.FIRST..FIRST+9
send() {
	ip netns exec "$NS" bash -c \
		"for h in \$(seq $1 $(($1 + 9))); do printf '%100s' x >/dev/udp/$NET.\$h/9; done"
}
cfg() { # PREFIX CUSTOMER [MAX]
	printf 'ranges:\n  - prefix: %s\n    labels: {customer: %s}\n' "$1" "$2" >"$WORK/r.yml.tmp"
	[ -z "${3:-}" ] || printf '    max_addresses: %s\n' "$3" >>"$WORK/r.yml.tmp"
	mv "$WORK/r.yml.tmp" "$WORK/r.yml"
}

cfg "$NET.16/28" b
port=$(free_port)
start agent "$PROMACCT" -i "$HOST_IF" --capture-threads 2 --config.file "$WORK/r.yml" \
	--web.listen-address "127.0.0.1:$port"
url="http://127.0.0.1:$port/metrics"
wait_http "$url"
PID=$(cat "$WORK/agent.pid")
sleep 0.3

# the customer's rx count series: address series, their sum, ip="other"
state() { # CUSTOMER
	curl -fsS "$url" >"$WORK/page.txt"
	awk -v c="customer=\"$1\"" -v i="interface=\"$HOST_IF\"" '
		$1 ~ /^promacct_packet_size_bytes_ipv4_rx_count\{/ && index($1, c) && index($1, i) {
			if (index($1, "ip=\"other\"")) o += $2; else { n++; s += $2 }
		}
		END { printf "series=%d sum=%d other=%d\n", n, s, o }' "$WORK/page.txt"
}
# expect CUSTOMER STATE TRACKED_KEYS TRACKED: waits up to 3 s for the page
expect() {
	local got
	for _ in $(seq 1 60); do
		got="$(state "$1") keys=$(value_of "$WORK/page.txt" "promacct_range_tracked_keys{customer=\"$1\"}") tracked=$(value_of "$WORK/page.txt" promacct_tracked_addresses)"
		[ "$got" = "$2 keys=$3 tracked=$4" ] && return 0
		sleep 0.05
	done
	fail "customer $1: $got, want $2 keys=$3 tracked=$4"
}
hup() {
	local n
	n=$(grep -c 'msg="config reloaded: ranges applied"' "$WORK/agent.log" || true)
	kill -HUP "$PID"
	for _ in $(seq 1 100); do
		[ "$(grep -c 'msg="config reloaded: ranges applied"' "$WORK/agent.log" || true)" -gt "$n" ] && break
		sleep 0.05
	done
	grep 'msg="config reloaded: ranges applied"' "$WORK/agent.log" | tail -n +$((n + 1)) |
		grep -q 'threads_moved=yes' || fail "no reload with every thread moved: $(tail -3 "$WORK/agent.log")"
}

send 17
expect b "series=10 sum=10 other=0" "" 10
ok "customer b: 10 addresses over 2 capture threads, 10 held"

cfg "$NET.16/28" a 2
hup
expect a "series=0 sum=0 other=0" 0 0
send 17
expect a "series=2 sum=2 other=8" 2 2
grep -q 'customer="b"' "$WORK/page.txt" && fail "customer b's series are still on the page"
ok "relabelled onto a cap of 2: 2 series, 8 in ip=\"other\", a holds 2"

cfg "$NET.32/28" a 2
hup
expect a "series=0 sum=0 other=8" 0 0
send 33
expect a "series=2 sum=2 other=16" 2 2
ok "renumbered: the ended addresses left the cap, 2 new ones admitted, 8 more in ip=\"other\""
