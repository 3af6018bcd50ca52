#!/bin/sh
# Installs what promacct needs from Debian 12 packages.
#   sh deploy/install-deps.sh          build dependencies
#   sh deploy/install-deps.sh --test   build + test dependencies (real
#                                      Prometheus, Pushgateway, VictoriaMetrics,
#                                      promtool, clang for the sanitizer runs)
set -eu
BUILD="build-essential cmake pkg-config libpcap-dev libmicrohttpd-dev zlib1g-dev
libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler libsnappy-dev ca-certificates"
TEST="libcmocka-dev clang clang-format prometheus prometheus-pushgateway victoria-metrics iproute2 curl jq
openssl apache2-utils procps"
PKGS=$BUILD
[ "${1:-}" = "--test" ] && PKGS="$BUILD $TEST"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
