#!/usr/bin/env bash
# The dependency list is complete: every command and file the test suite
# uses comes from a package that `sh deploy/install-deps.sh --test` installs
# (named, or pulled in as a Depends: recommendations are not installed) or
# from a minbase system (Essential or Priority: required packages). This is
# what a fresh `debootstrap --variant=minbase` machine gets; a package that
# only this development machine happens to have fails here.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v dpkg-query >/dev/null || ! command -v apt-cache >/dev/null; then
	echo "skipped: not a Debian system"
	exit 77
fi

# Commands the build, tests/run.sh and tests/e2e/*.sh run. Add a command
# here when a test starts using it.
COMMANDS="sh bash cmake make gcc cc pkg-config protoc-c clang clang-format llvm-symbolizer
awk sed grep diff mktemp timeout hostname od gunzip nproc seq sort
ip ss sysctl curl jq promtool prometheus prometheus-pushgateway victoria-metrics openssl htpasswd
wrk tcpreplay getconf setcap setpriv id systemd-analyze man dpkg-deb flock ldd gzip nm"

# Files found by the compilers rather than on PATH: the sanitizer runtimes
# of the ASan+UBSan and TSan suites, and the headers the build includes.
RT=$(clang -print-resource-dir)/lib/linux
FILES="$RT/libclang_rt.asan-x86_64.a $RT/libclang_rt.ubsan_standalone-x86_64.a
$RT/libclang_rt.tsan-x86_64.a $RT/libclang_rt.fuzzer-x86_64.a /usr/include/cmocka.h /usr/include/pcap/pcap.h
/usr/include/microhttpd.h /usr/include/zlib.h /usr/include/x86_64-linux-gnu/curl/curl.h
/usr/include/protobuf-c/protobuf-c.h /usr/include/snappy-c.h"

# shellcheck disable=SC2046
sh "$ROOT/deploy/install-deps.sh" --list --test >"$WORK/listed"
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances $(cat "$WORK/listed") 2>/dev/null |
	grep -v '^ ' | sed 's/:.*//' | sort -u >"$WORK/closure"
grep -qx build-essential "$WORK/closure" || fail "apt-cache depends gave no closure"

# The package owning PATH (merged /usr: dpkg may know it under /bin).
owner() {
	local f=$1 p
	p=$(dpkg-query -S "$f" 2>/dev/null || dpkg-query -S "${f#/usr}" 2>/dev/null || true)
	p=${p%%:*}
	echo "${p%%,*}"
}

missing=0
check() { # WHAT PATH
	local pkg
	pkg=$(owner "$2")
	if [ -z "$pkg" ]; then
		echo "  $1: $2 belongs to no package"
		missing=1
		return
	fi
	if grep -qx "$pkg" "$WORK/closure"; then
		return
	fi
	case "$(dpkg-query -W -f='${Essential} ${Priority}' "$pkg")" in
	yes* | *required) return ;;
	esac
	echo "  $1: needs package $pkg, which install-deps.sh --test does not install"
	missing=1
}

for c in $COMMANDS; do
	p=$(command -v "$c") || fail "$c: not installed on this machine"
	check "$c" "$(readlink -f "$p")"
done
for f in $FILES; do
	[ -e "$f" ] || fail "$f: not on this machine"
	check "$(basename "$f")" "$(readlink -f "$f")"
done
[ "$missing" = 0 ] || fail "deploy/install-deps.sh --test misses packages (above)"
ok "every command and file the suite uses is installed by install-deps.sh --test"

# The lists are what the usage says, and bad arguments are refused.
sh "$ROOT/deploy/install-deps.sh" --list | grep -qx libpcap-dev || fail "--list: build list"
sh "$ROOT/deploy/install-deps.sh" --list --test | grep -qx libclang-rt-14-dev ||
	fail "--list --test: sanitizer runtime"
sh "$ROOT/deploy/install-deps.sh" --list --bench | grep -qx tcpreplay || fail "--list --bench"
if sh "$ROOT/deploy/install-deps.sh" --list --nonsense 2>/dev/null; then
	fail "an unknown option was accepted"
fi
ok "install-deps.sh --list"
