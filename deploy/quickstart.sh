#!/bin/sh
# Quick start: install the build dependencies, build promacct, and run it on
# the interface of the default route with the scrape page on :9112.
# Needs root (or CAP_NET_RAW + CAP_NET_ADMIN) to capture.
set -eu
cd "$(dirname "$0")/.."
sh deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPROMACCT_TESTS=OFF -DPROMACCT_BENCH=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
IFACE=$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
if [ -z "$IFACE" ]; then
	echo "quickstart: no default route; pass an interface: build/promacct -i IFACE" >&2
	exit 1
fi
echo "promacct: capturing on $IFACE, metrics on http://localhost:9112/metrics (Ctrl-C stops)"
exec ./build/promacct -i "$IFACE" -r 0.0.0.0/0 -r ::/0 --web.listen-address :9112
