#!/bin/sh
# Re-seeds tests/fuzz/corpus/parse from the test captures: pcapgen writes
# every link type from the end-to-end specs, pcap2corpus cuts them into
# fuzz_parse inputs. Usage: sh tests/fuzz/seed.sh BUILD_DIR
set -eu
cd "$(dirname "$0")/../.."
B=${1:?usage: seed.sh BUILD_DIR}
OUT=tests/fuzz/corpus/parse
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/tests/pcapgen" en10mb "$T/eth.pcap" <tests/e2e/data/ethernet.spec
"$B/tests/fuzz/pcap2corpus" "$T/eth.pcap" "$OUT" seed-ethernet
for lt in linux_sll linux_sll2 raw null loop; do
	"$B/tests/pcapgen" "$lt" "$T/$lt.pcap" <tests/e2e/data/links.spec
	"$B/tests/fuzz/pcap2corpus" "$T/$lt.pcap" "$OUT" "seed-$lt"
done
grep -v ip6 tests/e2e/data/links.spec >"$T/v4.spec"
grep -v ip4 tests/e2e/data/links.spec >"$T/v6.spec"
"$B/tests/pcapgen" ipv4 "$T/ipv4.pcap" <"$T/v4.spec"
"$B/tests/fuzz/pcap2corpus" "$T/ipv4.pcap" "$OUT" seed-ipv4
"$B/tests/pcapgen" ipv6 "$T/ipv6.pcap" <"$T/v6.spec"
"$B/tests/fuzz/pcap2corpus" "$T/ipv6.pcap" "$OUT" seed-ipv6
