#!/bin/sh
# The build stage of the container image, as one script: the Dockerfile runs
# it, and tests/e2e/test_container.sh runs the very same steps.
#   sh deploy/docker/build.sh SRC OUT   ->  OUT/usr/bin/promacct (+ man page)
set -eu
SRC=${1:?usage: build.sh SRC OUT}
OUT=${2:?usage: build.sh SRC OUT}
B=${PROMACCT_DOCKER_BUILD_DIR:-$OUT.build}
cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DPROMACCT_TESTS=OFF -DPROMACCT_BENCH=OFF \
	-DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$B" -j"$(nproc)" --target promacct manpage >/dev/null
install -D -m 0755 "$B/promacct" "$OUT/usr/bin/promacct"
strip "$OUT/usr/bin/promacct"
install -D -m 0644 "$B/man/promacct.8.gz" "$OUT/usr/share/man/man8/promacct.8.gz"
