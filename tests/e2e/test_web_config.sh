#!/usr/bin/env bash
# End-to-end (issue 9): --web.config.file in the exporter-toolkit format.
# A real Prometheus scrapes the page over TLS with basic auth (up == 1); no
# credentials and a wrong password get 401; the configured headers come
# with every answer; a client certificate is required and checked when
# configured; TLS below min_version is refused; a bad file is a start-up
# error (exit 2) naming FILE:LINE:COLUMN.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || fail "openssl not installed"
command -v htpasswd >/dev/null || fail "htpasswd (apache2-utils) not installed"
command -v prometheus >/dev/null || fail "prometheus not installed"

"$PCAPGEN" en10mb "$WORK/l.pcap" <"$TESTDATA/links.spec"
cd "$WORK"
(
	K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
	# shellcheck disable=SC2086
	openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=promacct-test-ca
	printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
	# shellcheck disable=SC2086
	openssl req $K -keyout tls.key -out tls.csr -subj /CN=127.0.0.1
	openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt \
		-days 2 -extfile san.ext
	# shellcheck disable=SC2086
	openssl req $K -keyout client.key -out client.csr -subj /CN=prometheus
	openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
		-out client.crt -days 2
	# shellcheck disable=SC2086
	openssl req -x509 $K -keyout stranger.key -out stranger.crt -days 2 -subj /CN=stranger
) >certs.log 2>&1 || fail "openssl: $(tail -3 certs.log)"
HASH=$(htpasswd -nbBC 10 "" s3cret | tr -d ':\n')
printf 's3cret' >password

cat >web.yml <<YAML
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
  min_version: TLS13
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: $HASH
YAML
PORT=$(free_port)
start agent "$PROMACCT" -R "$WORK/l.pcap" -r 10.0.0.0/8 --web.config.file "$WORK/web.yml" \
	--web.listen-address "127.0.0.1:$PORT"
URL="https://127.0.0.1:$PORT/metrics"
for _ in $(seq 1 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$URL")" = 401 ] && break
	sleep 0.1
done
code() { curl -s -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' --cacert ca.crt "$@"; }
[ "$(code "$URL")" = 401 ] || fail "no credentials: not 401"
grep -qi '^WWW-Authenticate: Basic realm="promacct"' headers || fail "401 without WWW-Authenticate"
[ "$(code -u prometheus:wrong "$URL")" = 401 ] || fail "wrong password: not 401"
[ "$(code -u nobody:s3cret "$URL")" = 401 ] || fail "unknown user: not 401"
[ "$(code -u prometheus:s3cret "$URL")" = 200 ] || fail "right password: not 200"
grep -q '^promacct_packet_size_bytes_all_count' body || fail "no page over TLS"
grep -qi '^X-Content-Type-Options: nosniff' headers || fail "configured header missing"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" != 200 ] ||
	fail "plain HTTP answered"
[ "$(code --tls-max 1.2 -u prometheus:s3cret "$URL")" = 000 ] || fail "TLS 1.2 accepted below min_version"
ok "TLS + basic auth: 401 without or with wrong credentials, 200 with them; headers; TLS 1.2 refused"

# A real Prometheus scrapes it.
PP=$(free_port)
mkdir -p prom.data
cat >prom.yml <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: promacct
    scheme: https
    tls_config:
      ca_file: $WORK/ca.crt
    basic_auth:
      username: prometheus
      password_file: $WORK/password
    static_configs:
      - targets: ['127.0.0.1:$PORT']
YAML
start prom prometheus --config.file="$WORK/prom.yml" --storage.tsdb.path="$WORK/prom.data" \
	--web.listen-address="127.0.0.1:$PP" --log.level=warn
wait_http "http://127.0.0.1:$PP/-/ready" 30
up=""
for _ in $(seq 1 150); do
	up=$(curl -fsS --get "http://127.0.0.1:$PP/api/v1/query" --data-urlencode 'query=up{job="promacct"}' |
		jq -r '.data.result[0].value[1] // empty')
	[ "$up" = 1 ] && break
	sleep 0.2
done
[ "$up" = 1 ] || fail "Prometheus: up{job=\"promacct\"} is '$up', not 1"
stop prom
stop_agent agent
ok "a real Prometheus scrapes over TLS with basic auth: up == 1"

# Client certificates: required and checked against the CA.
cat >mtls.yml <<YAML
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
  client_ca_file: ca.crt
  client_auth_type: RequireAndVerifyClientCert
YAML
PORT2=$(free_port)
start agent2 "$PROMACCT" -R "$WORK/l.pcap" --web.config.file "$WORK/mtls.yml" \
	--web.listen-address "127.0.0.1:$PORT2"
URL2="https://127.0.0.1:$PORT2/metrics"
for _ in $(seq 1 100); do
	[ "$(code --cert client.crt --key client.key "$URL2")" = 200 ] && break
	sleep 0.1
done
[ "$(code --cert client.crt --key client.key "$URL2")" = 200 ] || fail "CA-signed client: not 200"
c=$(code "$URL2")
[ "$c" = 403 ] || [ "$c" = 000 ] || fail "no client certificate: $c"
c=$(code --cert stranger.crt --key stranger.key "$URL2")
[ "$c" = 403 ] || [ "$c" = 000 ] || fail "client certificate of another CA: $c"
stop_agent agent2
ok "client certificate required and verified (CA-signed 200; none or another CA refused)"

printf 'tls_server_config:\n  cert_file: tls.crt\n  keyfile: tls.key\n' >bad.yml
rc=0
"$PROMACCT" -R "$WORK/l.pcap" --web.config.file "$WORK/bad.yml" 2>bad.log || rc=$?
[ "$rc" = 2 ] || fail "bad web config: exit $rc"
grep -qF "$WORK/bad.yml:3:3: unknown key 'keyfile'" bad.log || fail "bad web config: $(cat bad.log)"
ok "a bad web config is a start-up error naming FILE:LINE:COLUMN"
