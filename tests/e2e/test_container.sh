#!/usr/bin/env bash
# The container image and the Kubernetes manifest (issue 9), without a
# container engine:
#   - the Dockerfile is multi-stage (Debian 12 build, Debian 12 slim runtime),
#     runs as a non-root user and builds through deploy/docker/build.sh;
#   - that script, run here exactly as the build stage runs it, makes a
#     binary whose every shared library comes from the runtime stage's
#     packages (deploy/docker/runtime-packages) or their dependencies;
#   - the manifest holds a ConfigMap, a host-network DaemonSet with only
#     NET_RAW/NET_ADMIN, non-root, and a Service; the flags and the ranges
#     file of its ConfigMap are accepted by the agent.
. "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
D="$ROOT/deploy/docker"
K="$ROOT/deploy/kubernetes/promacct.yaml"

# --- Dockerfile ----------------------------------------------------------
grep -q -E '^FROM debian:12 AS build$' "$D/Dockerfile" || fail "no Debian 12 build stage"
grep -q -E '^FROM debian:12-slim$' "$D/Dockerfile" || fail "no Debian 12 slim runtime stage"
grep -q -E '^RUN sh /src/deploy/docker/build.sh /src /out$' "$D/Dockerfile" ||
	fail "the build stage does not run deploy/docker/build.sh"
grep -q -E '^USER promacct' "$D/Dockerfile" || fail "the image does not run as a non-root user"
grep -q -E '^COPY --from=build /out/ /$' "$D/Dockerfile" || fail "runtime does not take /out"
ok "Dockerfile: two stages, build.sh, non-root user"

# --- the build stage's steps, here ------------------------------------------
sh "$D/build.sh" "$ROOT" "$WORK/out" >"$WORK/build.log" 2>&1 || {
	cat "$WORK/build.log"
	fail "deploy/docker/build.sh"
}
BIN="$WORK/out/usr/bin/promacct"
"$BIN" --version | grep -q "promacct, version" || fail "built binary: --version"
[ -f "$WORK/out/usr/share/man/man8/promacct.8.gz" ] || fail "no man page in /out"
# Packages the runtime stage installs, with their Depends closure.
# shellcheck disable=SC2046
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances $(cat "$D/runtime-packages") 2>/dev/null |
	grep -v '^ ' | sed 's/:.*//' | sort -u >"$WORK/runtime-closure"
grep -qx libpcap0.8 "$WORK/runtime-closure" || fail "apt-cache depends gave no closure"
missing=0
for lib in $(ldd "$BIN" | awk '/=> \// { print $3 }'); do
	real=$(readlink -f "$lib")
	pkg=$(dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "$real" 2>/dev/null ||
		dpkg-query -S "${real#/usr}" 2>/dev/null || true)
	pkg=${pkg%%:*}
	if [ -z "$pkg" ] || ! grep -qx "$pkg" "$WORK/runtime-closure"; then
		echo "FAIL: $lib (package ${pkg:-none}) is not in the runtime stage" >&2
		missing=$((missing + 1))
	fi
done
[ "$missing" = 0 ] || fail "$missing libraries missing from deploy/docker/runtime-packages"
ok "build.sh binary: $(ldd "$BIN" | grep -c '=> /') shared libraries, all from the runtime packages"

# --- Kubernetes ---------------------------------------------------------
for kind in Namespace ConfigMap DaemonSet Service; do
	grep -q -E "^kind: $kind\$" "$K" || fail "manifest has no $kind"
done
grep -q -E '^ +hostNetwork: true$' "$K" || fail "DaemonSet not on the host network"
grep -q -E '^ +runAsNonRoot: true$' "$K" || fail "DaemonSet may run as root"
grep -q -E '^ +drop: \["ALL"\]$' "$K" || fail "capabilities not dropped"
grep -q -E '^ +add: \["NET_RAW", "NET_ADMIN"\]$' "$K" || fail "NET_RAW/NET_ADMIN not added"
grep -q -E 'configMapRef:' "$K" || fail "flags not from the ConfigMap"
# The ConfigMap's settings work: its ranges file loads and its flags parse
# (the interface replaced by a capture file).
awk '/^  ranges.yml: \|/ { on = 1; next } on && /^  [^ ]/ { on = 0 } on && /^---/ { on = 0 }
	on { sub(/^    /, ""); print }' "$K" >"$WORK/ranges.yml"
grep -q '^ranges:' "$WORK/ranges.yml" || fail "no ranges.yml in the ConfigMap"
args=$(awk '/^  PROMACCT_ARGS: >-/ { on = 1; next } on && /^    / { sub(/^ +/, ""); printf "%s ", $0; next } { on = 0 }' "$K")
[ -n "$args" ] || fail "no PROMACCT_ARGS in the ConfigMap"
echo "ip4 10.1.2.3 10.4.5.6 6 100" | "$PCAPGEN" en10mb "$WORK/k.pcap"
# shellcheck disable=SC2086
set -- $args
conf=()
while [ $# -gt 0 ]; do
	case $1 in
	-i) conf+=(-R "$WORK/k.pcap"); shift ;;
	--config.file) conf+=(--config.file "$WORK/ranges.yml"); shift ;;
	--web.listen-address) shift ;;
	*) conf+=("$1") ;;
	esac
	shift
done
"$PROMACCT" "${conf[@]}" --once >"$WORK/k.page" 2>"$WORK/k.err" || {
	cat "$WORK/k.err"
	fail "the ConfigMap's settings: ${conf[*]}"
}
grep -q 'network="cluster"' "$WORK/k.page" || fail "the ConfigMap's range labels are not on the page"
ok "Kubernetes: Namespace, ConfigMap (flags + ranges.yml accepted), DaemonSet (host network, non-root, NET_RAW/NET_ADMIN only), Service"
