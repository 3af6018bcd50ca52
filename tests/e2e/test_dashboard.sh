#!/usr/bin/env bash
# The Grafana dashboard deploy/grafana/promacct.json (issue 12) is
# import-ready and every query in it works: a real Prometheus scrapes a live
# agent (capture on a veth pair fed by tcpreplay from the test's namespace,
# pushing to a real Pushgateway and remote-writing to VictoriaMetrics, with
# the recording rules of deploy/ loaded at a fast interval) for a while;
# then every PromQL expression of the dashboard, its variables substituted,
# must parse and return data, and every variable query must list values.
. "$(dirname "$0")/lib.sh"
need_root
command -v tcpreplay >/dev/null || fail "tcpreplay is not installed (deploy/install-deps.sh --test)"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DASH="$ROOT/deploy/grafana/promacct.json"

# --- the JSON itself ---------------------------------------------------
jq -e . "$DASH" >/dev/null || fail "not valid JSON"
jq -e '.templating.list | map(.name) | index("datasource") != null' "$DASH" >/dev/null ||
	fail "no datasource variable"
for v in instance interface range_label range_value; do
	jq -e --arg v "$v" '.templating.list | map(.name) | index($v) != null' "$DASH" >/dev/null ||
		fail "no $v variable"
done
jq -e '.id == null' "$DASH" >/dev/null || fail "a dashboard id (import would overwrite)"
# Every panel and query takes the data source from the variable.
bad=$(jq -r '[.. | objects | select(has("datasource")) | .datasource |
	select(type == "object" and .type == "prometheus" and .uid != "${datasource}")] | length' "$DASH")
[ "$bad" = 0 ] || fail "$bad data source references not through \${datasource}"
for t in timeseries table heatmap; do
	jq -e --arg t "$t" '[.panels[] | select(.type == $t)] | length > 0' "$DASH" >/dev/null ||
		fail "no $t panel"
done
ok "dashboard JSON: import-ready, datasource/instance/interface/range-label variables"

# --- a live agent, scraped -----------------------------------------------
veth_netns d
veth_up

cat >"$WORK/traffic.spec" <<'SPEC'
ip4 10.196.0.2 10.196.1.2 6 1400 count 20
ip4 10.196.1.2 10.196.0.2 6 80 count 20
ip4 10.196.0.3 192.0.2.1 17 600 count 10
ip4 10.196.1.3 10.196.0.3 1 98 count 5
ip6 2001:db8:196::2 2001:db8:196::3 17 900 count 10
ip6 2001:db8:196::3 2001:db8:196::2 58 120 count 5
SPEC
"$PCAPGEN" en10mb "$WORK/traffic.pcap" <"$WORK/traffic.spec"

web=$(free_port)
pg=$(free_port)
vm=$(free_port)
pr=$(free_port)
start_pushgateway pg "$pg"
start_victoria vm "$vm"
start agent "$PROMACCT" -i "$HOST_IF" \
	-r 10.196.0.0/24:customer=acme -r 10.196.1.0/24:customer=globex \
	-r 2001:db8:196::/64:customer=initech \
	--web.listen-address "127.0.0.1:$web" \
	--push.gateway "http://127.0.0.1:$pg" --push.interval 1s \
	--remote-write.url "http://127.0.0.1:$vm/api/v1/write" --remote-write.interval 1s
wait_http "http://127.0.0.1:$web/metrics"
ip netns exec "$NS" tcpreplay -q -i "$NS_IF" --pps 100 --loop 0 "$WORK/traffic.pcap" \
	>"$WORK/tcpreplay.log" 2>&1 &
PIDS+=($!)

# The shipped recording rules, evaluated every few seconds instead of 1m/1h.
sed -e 's/interval: 1m/interval: 2s/' -e 's/interval: 1h/interval: 3s/' \
	"$ROOT/deploy/recording_rules.yml" >"$WORK/rules.yml"
mkdir -p "$WORK/prom.data"
cat >"$WORK/prom.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$WORK/rules.yml"]
scrape_configs:
  - job_name: promacct
    static_configs:
      - targets: ["127.0.0.1:$web"]
EOF
start prom prometheus --config.file="$WORK/prom.yml" --storage.tsdb.path="$WORK/prom.data" \
	--web.listen-address="127.0.0.1:$pr" --log.level=warn
PROM="http://127.0.0.1:$pr"
wait_http "$PROM/-/ready" 30
wait_http "http://127.0.0.1:$pg/-/ready"

# Until the slowest expression (the p95 rules over the 5m-rate rules) has
# data, at most 60 s.
for _ in $(seq 1 60); do
	n=$(curl -fsS --get "$PROM/api/v1/query" \
		--data-urlencode 'query=ip:promacct_rx_bits:rate5m_p95_30d' | jq '.data.result | length')
	[ "${n:-0}" -gt 0 ] && break
	sleep 1
done
sleep 3

# Variables as Grafana substitutes them; the 5m step of the 30-day p95
# subqueries becomes 1s like the rule intervals above (a 5m-aligned step
# finds no point in a minute of data).
subst() {
	sed -e 's/\[30d:5m\]/[30d:1s]/g' -e 's/\$__rate_interval/10s/g' -e 's/\$__interval/2s/g' -e 's/\$__range/1m/g' \
		-e 's/\$range_label/customer/g' -e 's/\$range_value/.*/g' \
		-e 's/\$instance/.*/g' -e "s/\\\$interface/$HOST_IF/g"
}

# --- every expression of every panel -----------------------------------
jq -r '.. | objects | select(has("expr")) | .expr' "$DASH" | sort -u >"$WORK/exprs"
total=0
failed=0
while IFS= read -r expr; do
	q=$(printf '%s' "$expr" | subst)
	total=$((total + 1))
	r=$(curl -sS --get "$PROM/api/v1/query" --data-urlencode "query=$q")
	if [ "$(printf '%s' "$r" | jq -r .status)" != success ]; then
		echo "FAIL: does not parse: $q: $(printf '%s' "$r" | jq -r .error)" >&2
		failed=$((failed + 1))
	elif [ "$(printf '%s' "$r" | jq '.data.result | length')" = 0 ]; then
		echo "FAIL: no data: $q" >&2
		failed=$((failed + 1))
	fi
done <"$WORK/exprs"
[ "$failed" = 0 ] || fail "$failed of $total dashboard expressions failed"
ok "all $total dashboard expressions parse and return data"

# --- the variable queries (label_values(SELECTOR, LABEL)) ------------------
jq -r '.templating.list[] | select(.type == "query") | .definition' "$DASH" >"$WORK/vars"
nvars=0
while IFS= read -r def; do
	d=$(printf '%s' "$def" | subst)
	inner=${d#label_values(}
	inner=${inner%)}
	label=${inner##*, }
	match=${inner%, *}
	values=$(curl -fsS --get "$PROM/api/v1/label/$label/values" --data-urlencode "match[]=$match" |
		jq -r '.data | join(",")')
	[ -n "$values" ] || fail "variable query lists nothing: $d"
	nvars=$((nvars + 1))
	echo "variable $label: $values"
done <"$WORK/vars"
ok "all $nvars variable queries list values"
