# Shared helpers for the end-to-end tests (sourced). Each test runs in its
# own temporary directory; everything it starts is stopped on exit. Traffic
# only ever goes to loopback or to the test's own network namespaces.
set -euo pipefail

: "${PROMACCT:?PROMACCT must point to the promacct binary}"
: "${PCAPGEN:?PCAPGEN must point to the pcapgen tool}"

WORK=$(mktemp -d /tmp/promacct-e2e.XXXXXX)
PIDS=()
CLEANUPS=()
FAILED=0

cleanup() {
	local rc=$?
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	done
	for c in "${CLEANUPS[@]:-}"; do
		[ -n "$c" ] && eval "$c" >/dev/null 2>&1 || true
	done
	if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
		echo "--- logs kept in $WORK"
		for f in "$WORK"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (last 30 lines)"
			tail -n 30 "$f"
		done
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	FAILED=1
	exit 1
}

ok() {
	echo "ok: $*"
}

# A TCP port no socket uses right now, below the kernel's ephemeral range
# (so no outgoing connection can take it before the server binds it).
free_port() {
	local p lo
	lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	for _ in $(seq 1 100); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if [ -z "$(ss -Htan "sport = :$p")" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# wait_http URL [SECONDS]: until the URL answers 2xx.
wait_http() {
	local url=$1 t=${2:-20}
	local end=$((SECONDS + t))
	while [ $SECONDS -lt $end ]; do
		if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	fail "timed out waiting for $url"
}

# start NAME CMD...: runs CMD in the background, output in $WORK/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$WORK/$name.pid"
}

stop() {
	local pid
	pid=$(cat "$WORK/$1.pid")
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Stops a promacct started with `start`: SIGTERM must end it with status 0
# (a sanitizer report or a leak changes the status and fails the test).
stop_agent() {
	local pid rc=0
	pid=$(cat "$WORK/$1.pid")
	kill "$pid"
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || fail "$1 exited with status $rc after SIGTERM"
}

# ---- live capture: a veth pair into a namespace of the test's own --------
# veth_netns TAG: a network namespace of this test, NS=promacct-TAG$$, with
# its loopback up, and the names of a veth pair between it and the root
# namespace: HOST_IF=pTAG$$h here, NS_IF=pTAG$$n there (TAG is one letter,
# so the names fit in 15 characters; with $$ parallel runs never collide).
# The namespace and the pair go when the test exits. veth_up makes the pair.
veth_netns() {
	NS=promacct-$1$$
	HOST_IF=p$1$$h
	NS_IF=p$1$$n
	ip netns add "$NS"
	CLEANUPS+=("ip netns del $NS" "ip link del $HOST_IF")
	ip netns exec "$NS" ip link set lo up
}

# veth_up [NET]: creates the pair (again, after a test deleted it) and
# brings both ends up, with no IPv6 on them (no router solicitations or MLD
# to blur the counts). With NET (the first three octets of a /24): NET.1 on
# HOST_IF, NET.2 on NS_IF, and the namespace's ARP entry for NET.1 set up
# front, so that datagrams are not queued behind ARP (VETH_NET=NET, for
# veth_send_udp). The host side sits in the shared root namespace: parallel
# runs must not use the same NET.
veth_up() {
	VETH_NET=${1:-}
	ip link add "$HOST_IF" type veth peer name "$NS_IF"
	ip link set "$NS_IF" netns "$NS"
	sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1"
	ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$NS_IF.disable_ipv6=1"
	[ -z "$VETH_NET" ] || ip addr add "$VETH_NET.1/24" dev "$HOST_IF"
	ip link set "$HOST_IF" up
	[ -z "$VETH_NET" ] || ip netns exec "$NS" ip addr add "$VETH_NET.2/24" dev "$NS_IF"
	ip netns exec "$NS" ip link set "$NS_IF" up
	[ -z "$VETH_NET" ] || ip netns exec "$NS" ip neigh replace "$VETH_NET.1" \
		lladdr "$(cat "/sys/class/net/$HOST_IF/address")" dev "$NS_IF"
}

# veth_send_udp COUNT [PAYLOAD_BYTES [PORT]]: COUNT datagrams of
# PAYLOAD_BYTES (default 1) 'x' from NET.2 in the namespace to NET.1:PORT
# (default 9), one at a time.
veth_send_udp() {
	local payload
	payload=$(head -c "${2:-1}" /dev/zero | tr '\0' 'x')
	ip netns exec "$NS" bash -c \
		"for i in \$(seq 1 $1); do printf '%s' '$payload' >/dev/udp/$VETH_NET.1/${3:-9}; done"
}

# The value of one exact series in an exposition page (empty if absent).
# (label values in the tests hold no spaces)
value_of() {
	awk -v s="$2" '$1 == s { print $2; exit }' "$1"
}

# wait_value URL SERIES VALUE: until the page shows it (10 s); the last
# page fetched stays in $WORK/page.out.
wait_value() {
	for _ in $(seq 1 100); do
		curl -fsS "$1" >"$WORK/page.out" 2>/dev/null &&
			[ "$(value_of "$WORK/page.out" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	fail "$2 is '$(value_of "$WORK/page.out" "$2")', want $3"
}

# Exposition text without the lines that differ run to run.
stable() {
	grep -v -e '^promacct_start_time_seconds ' -e '^promacct_build_info' \
		-e '^promacct_http_' -e '^promacct_push_' -e '^promacct_remote_write_' \
		-e '^# HELP promacct_http_' -e '^# TYPE promacct_http_' \
		-e 'promacct_config_last_reload_' "$@"
}

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: needs root (network namespaces)"
		exit 77
	fi
}

# Normalizes an exposition page to "name{sorted labels} value" lines, with
# the labels named in DROP (space-separated) removed; comments dropped.
# (Test data holds no '",' inside label values.)
normalize() { # PAGE [DROP]
	awk -v drop=" ${2:-} " '
	/^#/ || NF == 0 { next }
	{
		line = $0
		val = line; sub(/.* /, "", val)
		series = substr(line, 1, length(line) - length(val) - 1)
		name = series; labels = ""
		if (index(series, "{")) {
			name = substr(series, 1, index(series, "{") - 1)
			labels = substr(series, index(series, "{") + 1)
			labels = substr(labels, 1, length(labels) - 1)
		}
		n = 0
		while (length(labels) > 0) {
			p = index(labels, "\",")
			if (p == 0) { piece = labels; labels = "" }
			else { piece = substr(labels, 1, p); labels = substr(labels, p + 2) }
			ln = substr(piece, 1, index(piece, "=") - 1)
			if (index(drop, " " ln " ")) continue
			parts[++n] = piece
		}
		for (i = 2; i <= n; i++) { v = parts[i]; j = i - 1
			while (j > 0 && parts[j] > v) { parts[j + 1] = parts[j]; j-- }
			parts[j + 1] = v }
		out = name "{"
		for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") parts[i]
		print out "} " val
	}' "$1" | sort
}

start_pushgateway() { # NAME PORT [EXTRA FLAGS]
	local name=$1 port=$2
	shift 2
	start "$name" prometheus-pushgateway --web.listen-address "127.0.0.1:$port" \
		--persistence.file= --log.level=warn "$@"
}

start_prometheus() { # NAME PORT
	mkdir -p "$WORK/$1.data"
	printf 'global:\n  scrape_interval: 1m\n' >"$WORK/$1.yml"
	start "$1" prometheus --config.file="$WORK/$1.yml" --storage.tsdb.path="$WORK/$1.data" \
		--web.listen-address="127.0.0.1:$2" --web.enable-remote-write-receiver --log.level=warn
}

start_victoria() { # NAME PORT
	mkdir -p "$WORK/$1.data"
	start "$1" victoria-metrics -httpListenAddr="127.0.0.1:$2" -storageDataPath="$WORK/$1.data" \
		-retentionPeriod=1d -search.latencyOffset=0s -search.disableCache -loggerLevel=WARN
}

# Instant query of every promacct series from a Prometheus-API server,
# printed as normalized "name{sorted labels} value" lines without DROP labels.
query_all() { # BASEURL [DROP] [EXTRA MATCHERS]
	curl -fsS --get "$1/api/v1/query" --data-urlencode "query={__name__=~\"promacct_.+\"${3:+,$3}}" |
		jq -r --arg drop " ${2:-} " '.data.result[] |
			(.metric.__name__ + "{" + ([.metric | to_entries[] |
				select(.key != "__name__") |
				select(.key as $k | ($drop | index(" " + $k + " ")) | not)] |
				sort_by(.key) | map(.key + "=\"" + .value + "\"") | join(",")) +
			"} " + .value[1])' | sort
}
