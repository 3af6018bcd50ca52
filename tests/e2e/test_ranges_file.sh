#!/usr/bin/env bash
# End-to-end: ranges from --config.file with rollups (/24, /64), a range cap
# with its overflow series, checked against an exact expected page; and the
# per-customer sums of rollups and overflow equal those of per-address
# accounting of the same capture (issue 8).
. "$(dirname "$0")/lib.sh"
DATA=$TESTDATA

"$PCAPGEN" en10mb "$WORK/isp.pcap" <"$DATA/isp.spec"
"$PROMACCT" -R "$WORK/isp.pcap" --once --config.file "$DATA/isp.yml" --buckets 100,1000 \
	>"$WORK/isp.out" 2>"$WORK/isp.log"
promtool check metrics <"$WORK/isp.out" >"$WORK/isp.lint" 2>&1 || {
	cat "$WORK/isp.lint"
	fail "promtool check metrics complained"
}
grep -E '^promacct_packet_size_bytes_ipv|^promacct_range_|^promacct_untracked_packets_total\{' \
	"$WORK/isp.out" >"$WORK/isp.got" || true
if ! diff -u "$DATA/isp.expected" "$WORK/isp.got"; then
	fail "rollups and overflow: page differs from isp.expected"
fi
ok "rollups /24 and /64, a range cap with its ip=\"other\" series: exact page"

# The same ranges per address and uncapped: every address its own series.
grep -v -E 'granularity|max_addresses' "$DATA/isp.yml" >"$WORK/flat.yml"
"$PROMACCT" -R "$WORK/isp.pcap" --once --config.file "$WORK/flat.yml" --buckets 100,1000 \
	>"$WORK/flat.out" 2>"$WORK/flat.log"
grep -q 'ip="198.51.100.7"' "$WORK/flat.out" || fail "flat config: no per-address series"
# sum by (customer) of every address family's _sum and _count
by_customer() {
	awk '/^promacct_packet_size_bytes_ipv[46]_[rt]x_(sum|count)\{/ {
		name = $1; sub(/\{.*/, "", name)
		c = $1; sub(/.*customer="/, "", c); sub(/".*/, "", c)
		t[name " " c] += $2
	} END { for (k in t) print k, t[k] }' "$1" | sort
}
by_customer "$WORK/isp.out" >"$WORK/isp.sums"
by_customer "$WORK/flat.out" >"$WORK/flat.sums"
[ "$(wc -l <"$WORK/isp.sums")" -ge 12 ] || fail "too few per-customer sums"
if ! diff -u "$WORK/flat.sums" "$WORK/isp.sums"; then
	fail "per-customer sums of rollups and overflow differ from per-address sums"
fi
ok "sum by (customer) is the same with rollups and caps as per address"

# A bad file is a usage error naming FILE:LINE:COLUMN.
printf 'ranges:\n  - prefix: 2001:db8::/32\n    granularity: 129\n' >"$WORK/bad.yml"
set +e
"$PROMACCT" -R "$WORK/isp.pcap" --once --config.file "$WORK/bad.yml" >/dev/null 2>"$WORK/bad.log"
rc=$?
set -e
[ "$rc" = 2 ] || fail "bad granularity: exit $rc, want 2"
grep -q "bad.yml:3:" "$WORK/bad.log" || fail "bad granularity: no FILE:LINE in the error"
ok "a granularity out of bounds is a usage error with its position"
