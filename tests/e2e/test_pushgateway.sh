#!/usr/bin/env bash
# End-to-end against the real prometheus-pushgateway: --once pushes exactly
# what --once prints; PUT replaces the group, POST merges; awkward grouping
# values; delete-on-exit; a gateway that starts late and restarts; basic
# auth over TLS with a CA made here.
. "$(dirname "$0")/lib.sh"
command -v prometheus-pushgateway >/dev/null || fail "prometheus-pushgateway not installed"

PORT=$(free_port)
GW="http://127.0.0.1:$PORT"
start_pushgateway gw "$PORT"
wait_http "$GW/-/ready"

"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$TESTDATA/ethernet.spec"
RANGES=(-r '10.0.0.0/30:customer=a' -r 10.0.0.0/8:customer=b -r '[2001:db8::]-[2001:db8::ffff]:site=x')
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" >"$WORK/once.out" 2>/dev/null

# 1. --once push: the gateway holds exactly the printed values.
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --push.gateway "$GW" \
	--push.grouping dc=ams1 >"$WORK/push1.out" 2>"$WORK/push1.log" || fail "--once push failed"
[ ! -s "$WORK/push1.out" ] || fail "--once with a push target must not print the page"
curl -fsS "$GW/metrics" >"$WORK/gw1.out"
grep '^promacct_' "$WORK/gw1.out" | grep 'dc="ams1"' >"$WORK/gw1.group"
grep -q 'job="promacct"' "$WORK/gw1.group" || fail "job label missing"
grep -q "instance=\"$(hostname)\"" "$WORK/gw1.group" || fail "instance label is not the host name"
normalize "$WORK/gw1.group" "job instance dc" | grep -v -e promacct_push_ -e promacct_start_time \
	-e promacct_build_info >"$WORK/gw1.norm"
normalize <(stable "$WORK/once.out") | grep -v -e promacct_push_ >"$WORK/once.norm"
diff -u "$WORK/once.norm" "$WORK/gw1.norm" || fail "gateway values differ from --once"
ok "--once push: $(wc -l <"$WORK/once.norm") series equal to --once output"
grep -q '^push_time_seconds{.*dc="ams1"' "$WORK/gw1.out" || fail "no push_time_seconds"

# 2. PUT replaces the group, POST replaces only the families pushed.
mkdir -p "$WORK/v4"
grep -v '^ip6' "$TESTDATA/ethernet.spec" | "$PCAPGEN" en10mb "$WORK/v4/eth.pcap"
group_has() { # PATTERN: the dc=ams1 group on the gateway has a line matching
	curl -fsS "$GW/metrics" >"$WORK/gw.page"
	awk -v p="$1" '/dc="ams1"/ && $0 ~ p { f = 1 } END { exit !f }' "$WORK/gw.page"
}
"$PROMACCT" -R "$WORK/eth.pcap" --once "${RANGES[@]}" --push.gateway "$GW" --push.grouping dc=ams1 2>/dev/null
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once "${RANGES[@]}" --push.gateway "$GW" --push.grouping dc=ams1 \
	--push.method post 2>/dev/null || fail "POST failed"
group_has '^promacct_packet_size_bytes_ipv6_tx' || fail "POST dropped other families"
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once "${RANGES[@]}" --push.gateway "$GW" --push.grouping dc=ams1 \
	--push.method put 2>/dev/null || fail "PUT failed"
group_has '^promacct_packet_size_bytes_ipv6_tx' && fail "PUT kept old families"
group_has '^promacct_packet_size_bytes_ipv4_tx' || fail "PUT lost the pushed families"
ok "PUT replaces the group, POST merges"

# 3. Grouping values with a slash and an empty one (base64 in the URL).
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW" \
	--push.grouping 'path=/srv/a b' --push.grouping empty= --push.job 'edge/1' \
	2>"$WORK/push3.log" || fail "awkward grouping values rejected"
curl -fsS "$GW/metrics" >"$WORK/gw3.page"
grep -q '^promacct_packet_size_bytes_all_count{.*job="edge/1",path="/srv/a b"' "$WORK/gw3.page" ||
	fail "group with / in job and value not found"
ok "grouping values with / and empty values"

# 4. Live agent: the gateway starts late, restarts; delete-on-exit.
PORT2=$(free_port)
GW2="http://127.0.0.1:$PORT2"
SPORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/eth.pcap" -r 10.0.0.0/8 --push.gateway "$GW2" \
	--push.interval 300ms --push.timeout 2s --push.delete-on-exit --push.grouping dc=late \
	--web.listen-address "127.0.0.1:$SPORT"
wait_http "http://127.0.0.1:$SPORT/metrics"
sleep 1.5 # five intervals with no gateway
curl -fsS --max-time 2 "http://127.0.0.1:$SPORT/metrics" >/dev/null || fail "scrape page down while gateway is"
[ "$(grep -c 'msg="push failed"' "$WORK/agent.log")" = 1 ] ||
	fail "failure must be logged once, got $(grep -c 'msg="push failed"' "$WORK/agent.log")"
start_pushgateway gw2 "$PORT2"
wait_http "$GW2/-/ready"
has_group() {
	curl -fsS "$GW2/metrics" >"$WORK/gw2.page" 2>/dev/null || return 1
	grep -q '^promacct_packet_size_bytes_all_count{.*dc="late"' "$WORK/gw2.page"
}
for _ in $(seq 1 50); do has_group && break; sleep 0.1; done
has_group || fail "no push after the gateway came up"
stop gw2
sleep 1
start_pushgateway gw2 "$PORT2"
wait_http "$GW2/-/ready"
for _ in $(seq 1 50); do has_group && break; sleep 0.1; done
has_group || fail "no push after the gateway restarted"
grep -q 'msg="push succeeded"' "$WORK/agent.log" || fail "recovery not logged"
ok "gateway late and restarted: pushes resume, failure logged once per change"
curl -fsS "http://127.0.0.1:$SPORT/metrics" >"$WORK/agent.page"
grep -q '^promacct_push_requests_total{result="success"} [1-9]' "$WORK/agent.page" ||
	fail "push self-metrics"
stop_agent agent
has_group && fail "group not deleted on exit"
grep -q 'msg="deleted the pushed group"' "$WORK/agent.log" || fail "no delete log line"
ok "delete-on-exit"

# 5. TLS with a CA made here, and basic auth.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=promacct-test-ca \
	-keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$WORK/srv.key" \
	-out "$WORK/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
	-days 1 -extfile "$WORK/san.ext" -out "$WORK/srv.pem" 2>/dev/null
PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$PASS" >"$WORK/pw"
HASH=$(htpasswd -nbBC 10 pusher "$PASS" | cut -d: -f2)
cat >"$WORK/web.yml" <<YML
tls_server_config:
  cert_file: $WORK/srv.pem
  key_file: $WORK/srv.key
basic_auth_users:
  pusher: '$HASH'
YML
PORT3=$(free_port)
start_pushgateway gw3 "$PORT3" --web.config.file "$WORK/web.yml"
for _ in $(seq 1 50); do
	curl -fsS --cacert "$WORK/ca.pem" -u "pusher:$PASS" "https://127.0.0.1:$PORT3/-/ready" >/dev/null 2>&1 && break
	sleep 0.1
done
GW3="https://127.0.0.1:$PORT3"
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW3" \
	--push.tls-ca-file "$WORK/ca.pem" --push.basic-auth-user pusher \
	--push.basic-auth-password-file "$WORK/pw" 2>"$WORK/tls.log" || fail "TLS + basic auth push failed"
grep -q "$PASS" "$WORK/tls.log" && fail "the password appears in the log"
curl -fsS --cacert "$WORK/ca.pem" -u "pusher:$PASS" "$GW3/metrics" >"$WORK/gw3tls.page"
grep -q '^promacct_packet_size_bytes_all_count' "$WORK/gw3tls.page" || fail "TLS push not stored"
printf 'wrong\n' >"$WORK/badpw"
rc=0
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW3" \
	--push.tls-ca-file "$WORK/ca.pem" --push.basic-auth-user pusher \
	--push.basic-auth-password-file "$WORK/badpw" 2>"$WORK/badpw.log" || rc=$?
[ "$rc" = 1 ] || fail "wrong password: exit $rc"
grep -q 'status=401' "$WORK/badpw.log" || fail "401 not reported"
rc=0
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW3" \
	--push.basic-auth-user pusher --push.basic-auth-password-file "$WORK/pw" 2>"$WORK/noca.log" || rc=$?
[ "$rc" = 1 ] || fail "unknown CA accepted"
"$PROMACCT" -R "$WORK/v4/eth.pcap" --once -r 10.0.0.0/8 --push.gateway "$GW3" \
	--push.tls-insecure-skip-verify --push.basic-auth-user pusher \
	--push.basic-auth-password-file "$WORK/pw" 2>/dev/null || fail "skip-verify failed"
ok "TLS with a test CA, basic auth, 401 reported, unknown CA refused"
