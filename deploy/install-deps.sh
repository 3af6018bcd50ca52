#!/bin/sh
# Installs what promacct needs from Debian 12 packages, each named
# explicitly: installs run with --no-install-recommends (as CI and a
# minimal machine do), so nothing may come in only as a recommendation.
#   sh deploy/install-deps.sh          build dependencies
#   sh deploy/install-deps.sh --test   build + test dependencies (what
#                                      `sh tests/run.sh` needs)
#   sh deploy/install-deps.sh --bench  build + test + benchmark dependencies
#   sh deploy/install-deps.sh --list [--test|--bench]
#                                      print the package names, install nothing
# tests/e2e/test_deps.sh checks that every command and file the suite uses
# comes from these packages (or from a minbase system).
set -eu

# Build: compiler, CMake, and the libraries promacct links; iproute2 for
# deploy/quickstart.sh (ip route: the interface of the default route).
BUILD="build-essential cmake pkg-config libpcap-dev libmicrohttpd-dev zlib1g-dev
libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler libsnappy-dev libyaml-dev libcrypt-dev libgnutls28-dev ca-certificates iproute2"

# Tests (tests/run.sh and tests/e2e/*.sh):
#   libcmocka-dev          unit tests
#   clang                  the second compiler and the sanitizer builds
#   libclang-rt-14-dev     clang's sanitizer runtimes (ASan, UBSan, TSan):
#                          only a Recommends of clang, so named here
#   llvm                   llvm-symbolizer: sanitizer reports with file:line
#   clang-format           the formatting check
#   prometheus             real Prometheus and promtool
#   prometheus-pushgateway, victoria-metrics   real receivers
#   iproute2               ip (veth pairs, network namespaces), ss (free ports)
#   procps                 sysctl, ps
#   curl, jq               scrapes and Prometheus API queries
#   openssl                test CAs and certificates
#   apache2-utils          htpasswd (basic auth users for the Pushgateway)
#   wrk, tcpreplay         the load test: /metrics under 64 connections during
#                          a live replay (tests/e2e/test_load.sh)
#   libcap2-bin            setcap (the file-capabilities deployment, test_privdrop)
#   chromium               headless browser: the status page in a real DOM and
#                          its screenshot (tests/e2e/test_status_page.sh)
#   fonts-dejavu-core      a font for that screenshot (chromium only recommends one)
#   systemd, man-db        systemd-analyze verify of the unit, man -l of
#                          promacct(8) (tests/e2e/test_package.sh)
#   file                   CPack's DEB generator (shlibdeps) refuses to run
#                          without it: `--target package` in test_package.sh
TEST="libcmocka-dev clang libclang-rt-14-dev llvm clang-format prometheus
prometheus-pushgateway victoria-metrics iproute2 procps curl jq openssl apache2-utils
wrk tcpreplay libcap2-bin chromium fonts-dejavu-core
systemd man-db file"

# Benchmarks (bench/bench.sh): tcpreplay for the live part (also in TEST).
BENCH="tcpreplay"

LIST=0
if [ "${1:-}" = "--list" ]; then
	LIST=1
	shift
fi
case "${1:-}" in
"") PKGS=$BUILD ;;
--test) PKGS="$BUILD $TEST" ;;
--bench) PKGS="$BUILD $TEST $BENCH" ;;
*)
	echo "usage: $0 [--list] [--test|--bench]" >&2
	exit 2
	;;
esac
if [ "$LIST" = 1 ]; then
	# shellcheck disable=SC2086
	printf '%s\n' $PKGS
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
