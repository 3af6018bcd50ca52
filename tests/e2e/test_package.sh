#!/usr/bin/env bash
# The Debian package (issue 9): `cmake --build BUILD --target package` makes
# a .deb that installs with dpkg -i, gives a working `promacct --version`,
# a man page promacct(8) that renders without warnings and lists every flag
# of --help, a systemd unit that passes `systemd-analyze verify`, the
# conffile /etc/default/promacct and the system user `promacct`; as that user
# with only the unit's two ambient capabilities, the agent captures live. The
# package is purged afterwards (and the user removed, when this test made it).
. "$(dirname "$0")/lib.sh"
need_root
: "${BUILD_DIR:?BUILD_DIR must point to the build tree}"
for c in dpkg dpkg-deb systemd-analyze man setpriv; do
	command -v "$c" >/dev/null || fail "$c is not installed (deploy/install-deps.sh --test)"
done

# One package test at a time on this machine (dpkg's database is global).
exec 9>/tmp/promacct-package-test.lock
flock -w 300 9 || fail "another package test holds the lock"
if dpkg-query -W -f '${Status}' promacct 2>/dev/null | grep -q installed; then
	echo "skipped: a promacct package is installed on this machine already"
	exit 77
fi

cmake --build "$BUILD_DIR" --target package >"$WORK/cpack.log" 2>&1 || {
	cat "$WORK/cpack.log"
	fail "cmake --build --target package"
}
DEB=$(ls "$BUILD_DIR"/promacct_*.deb | head -n 1)
[ -f "$DEB" ] || fail "no .deb in $BUILD_DIR"
dpkg-deb -c "$DEB" >"$WORK/contents"
for f in ./usr/bin/promacct ./usr/lib/systemd/system/promacct.service ./etc/default/promacct \
	./usr/share/man/man8/promacct.8.gz ./usr/share/doc/promacct/copyright \
	./usr/share/doc/promacct/alerts.yml ./usr/share/doc/promacct/promacct.json; do
	grep -q " $f\$" "$WORK/contents" || fail "package lacks $f"
done
dpkg-deb -f "$DEB" Depends | grep -q libpcap || fail "Depends lacks libpcap"
ok "package $(basename "$DEB"): $(wc -l <"$WORK/contents") entries, Depends: $(dpkg-deb -f "$DEB" Depends)"

had_user=0
getent passwd promacct >/dev/null && had_user=1
CLEANUPS+=("dpkg -P promacct" "[ $had_user = 1 ] || userdel promacct")
# dpkg fails at once when another dpkg/apt holds its lock: retry for a while.
for i in $(seq 1 60); do
	dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 && break
	grep -q -i lock "$WORK/dpkg.log" || {
		cat "$WORK/dpkg.log"
		fail "dpkg -i"
	}
	[ "$i" = 60 ] && fail "dpkg lock busy for 60 s"
	sleep 1
done
/usr/bin/promacct --version | grep -q "promacct, version" || fail "promacct --version"
getent passwd promacct >/dev/null || fail "postinst made no promacct user"
dpkg-query -W -f '${Conffiles}' promacct | grep -q /etc/default/promacct ||
	fail "/etc/default/promacct is not a conffile"
ok "dpkg -i: $(/usr/bin/promacct --version), user promacct, conffile /etc/default/promacct"

MANWIDTH=100 man --warnings -l /usr/share/man/man8/promacct.8.gz >"$WORK/man.txt" 2>"$WORK/man.err" ||
	fail "man -l failed"
[ ! -s "$WORK/man.err" ] || {
	cat "$WORK/man.err"
	fail "man page warnings"
}
grep -q "^NAME" "$WORK/man.txt" || fail "man page has no NAME"
for flag in $(/usr/bin/promacct --help | grep -o -E '^ +(-., )?--[a-z0-9.-]+' | grep -o -E -- '--[a-z0-9.-]+'); do
	grep -q -F -- "$flag" "$WORK/man.txt" || fail "man page lacks $flag"
done
ok "man -l promacct.8.gz renders without warnings, every --help flag in it"

systemd-analyze verify /usr/lib/systemd/system/promacct.service >"$WORK/verify.log" 2>&1 || {
	cat "$WORK/verify.log"
	fail "systemd-analyze verify"
}
ok "systemd-analyze verify promacct.service"

# What the unit gives: user promacct, ambient CAP_NET_RAW CAP_NET_ADMIN,
# no new privileges. Capture must work with exactly that.
NS=promacct-k$$
HOST_IF=pk$$h
NS_IF=pk$$n
ip netns add "$NS"
CLEANUPS+=("ip netns del $NS" "ip link del $HOST_IF")
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1"
ip addr add 10.195.0.1/24 dev "$HOST_IF"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add 10.195.0.2/24 dev "$NS_IF"
ip netns exec "$NS" ip link set "$NS_IF" up
ip netns exec "$NS" ip neigh replace 10.195.0.1 lladdr "$(cat /sys/class/net/$HOST_IF/address)" dev "$NS_IF"
port=$(free_port)
start service setpriv --reuid promacct --regid promacct --clear-groups \
	--inh-caps=-all,+net_raw,+net_admin --ambient-caps=-all,+net_raw,+net_admin \
	--bounding-set=-all,+net_raw,+net_admin --no-new-privs \
	/usr/bin/promacct -i "$HOST_IF" -r 10.195.0.0/24:net=svc --web.listen-address "127.0.0.1:$port"
wait_http "http://127.0.0.1:$port/metrics"
pid=$(cat "$WORK/service.pid")
grep -q "^Uid:.*$(id -u promacct)" "/proc/$pid/status" || fail "not running as promacct"
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
# At most the two it was given (the agent drops what it does not need).
[ $((16#$caps & ~16#3000)) = 0 ] || fail "effective capabilities $caps beyond CAP_NET_ADMIN|CAP_NET_RAW (3000)"
sleep 0.3
ip netns exec "$NS" bash -c 'for i in 1 2 3 4 5; do printf x >/dev/udp/10.195.0.1/9; done'
series="promacct_packet_size_bytes_ipv4_tx_count{interface=\"$HOST_IF\",ip=\"10.195.0.2\",protocol=\"udp\",net=\"svc\"}"
for _ in $(seq 1 30); do
	curl -fsS "http://127.0.0.1:$port/metrics" >"$WORK/page.txt"
	[ "$(value_of "$WORK/page.txt" "$series")" = 5 ] && break
	sleep 0.1
done
[ "$(value_of "$WORK/page.txt" "$series")" = 5 ] || fail "capture as user promacct counted $(value_of "$WORK/page.txt" "$series") of 5"
stop_agent service
ok "as user promacct given only CAP_NET_RAW+CAP_NET_ADMIN (CapEff now $caps): live capture works"
