#!/usr/bin/env bash
# End-to-end: --config.file (issue 8). Its ranges come after the -r flags
# (first match wins) and carry their labels and rollups; a bad file is a
# usage error (exit 2) naming FILE:LINE:COLUMN, one line.
. "$(dirname "$0")/lib.sh"

"$PCAPGEN" en10mb "$WORK/l.pcap" <"$TESTDATA/links.spec"
cat >"$WORK/ranges.yml" <<'YAML'
ranges:
  - prefix: 10.0.0.0/31                # 10.0.0.2 is taken by the -r flag first
    labels: {customer: acme}
  - prefix: 2001:db8::/64
    labels: {customer: initech}
    granularity: 64
YAML
"$PROMACCT" -R "$WORK/l.pcap" --once -r 10.0.0.2/32:customer=flag \
	--config.file "$WORK/ranges.yml" >"$WORK/page.txt" 2>"$WORK/ok.log" ||
	fail "a good file was refused: $(cat "$WORK/ok.log")"
want() {
	grep -qF -- "$1" "$WORK/page.txt" || fail "page lacks $1"
}
want 'promacct_packet_size_bytes_ipv4_tx_count{interface="l.pcap",ip="10.0.0.1",protocol="tcp",customer="acme"} 2'
want 'promacct_packet_size_bytes_ipv4_tx_count{interface="l.pcap",ip="10.0.0.2",protocol="udp",customer="flag"} 1'
want 'promacct_packet_size_bytes_ipv6_rx_count{interface="l.pcap",ip="2001:db8::/64",protocol="tcp",customer="initech"} 1'
ok "ranges of the file after the -r flags, with labels and a /64 rollup"

# --log.level debug says what was loaded and opened.
"$PROMACCT" -R "$WORK/l.pcap" --once --log.level debug --config.file "$WORK/ranges.yml" \
	>/dev/null 2>"$WORK/debug.log"
for line in "msg=\"config file loaded\" file=$WORK/ranges.yml ranges=2 " \
	'msg="ranges built" ranges=2 ' "msg=\"capture file opened\" file=$WORK/l.pcap linktype=EN10MB"; do
	grep -qF -- "$line" "$WORK/debug.log" || fail "no debug line '$line'"
done
ok "debug lines: config file loaded, ranges built, capture file opened"

bad() { # LINE:COLUMN NEEDLE YAML
	printf '%s' "$3" >"$WORK/bad.yml"
	rc=0
	"$PROMACCT" -R "$WORK/l.pcap" --once --config.file "$WORK/bad.yml" >/dev/null \
		2>"$WORK/bad.log" || rc=$?
	[ "$rc" = 2 ] || fail "bad file ($2): exit $rc, expected 2"
	[ "$(wc -l <"$WORK/bad.log")" = 1 ] || fail "bad file ($2): not one line"
	grep -qF -- "$WORK/bad.yml:$1: " "$WORK/bad.log" || fail "no $WORK/bad.yml:$1 in: $(cat "$WORK/bad.log")"
	grep -qF -- "$2" "$WORK/bad.log" || fail "'$2' not in: $(cat "$WORK/bad.log")"
}
bad 3:5 "unknown key 'lables'" $'ranges:\n  - prefix: 10.0.0.0/8\n    lables: {a: b}\n'
bad 2:13 "host bits set" $'ranges:\n  - prefix: 10.0.0.1/8\n'
bad 3:14 "'instance' is reserved" $'ranges:\n  - prefix: 10.0.0.0/8\n    labels: {instance: x}\n'
bad 3:18 "granularity 33 is outside 1-32" $'ranges:\n  - prefix: 10.0.0.0/8\n    granularity: 33\n'
bad 2:12 "first is after last" $'ranges:\n  - first: 10.0.0.9\n    last: 10.0.0.1\n'
ok "bad files: exit 2, one line naming FILE:LINE:COLUMN"

rc=0
"$PROMACCT" -R "$WORK/l.pcap" --once --config.file "$WORK/missing.yml" 2>"$WORK/missing.log" || rc=$?
[ "$rc" = 2 ] && grep -qF "$WORK/missing.yml" "$WORK/missing.log" || fail "missing file: exit $rc"
ok "a missing file is a usage error naming it"

# A file with nothing in it (0 bytes, or blanks) is refused, not read as no
# ranges (a file truncated while it is written).
for empty in '' $'\n  \n'; do
	printf '%s' "$empty" >"$WORK/empty.yml"
	rc=0
	"$PROMACCT" -R "$WORK/l.pcap" --once --config.file "$WORK/empty.yml" 2>"$WORK/empty.log" || rc=$?
	[ "$rc" = 2 ] && grep -qF "$WORK/empty.yml: no configuration in it" "$WORK/empty.log" ||
		fail "empty file: exit $rc: $(cat "$WORK/empty.log")"
done
ok "an empty file is a usage error naming it"

# One label limit for every output (issue 13 defect 5: remote write used to
# drop labels beyond 64 silently): 58 range labels + job + instance + 5
# fixed = 65 is a usage error naming the counts; 57 is fine.
labels() { # N
	printf 'ranges:\n  - prefix: 10.0.0.0/8\n    labels:\n'
	for i in $(seq 1 "$1"); do printf '      l%d: v\n' "$i"; done
}
labels 58 >"$WORK/wide.yml"
rc=0
"$PROMACCT" -R "$WORK/l.pcap" --once --config.file "$WORK/wide.yml" \
	--remote-write.url http://127.0.0.1:1/api/v1/write 2>"$WORK/wide.log" >/dev/null || rc=$?
[ "$rc" = 2 ] || fail "65 labels per series: exit $rc, expected 2"
grep -q 'too many labels per series: 58 range labels + 2 external/grouping labels + 5 fixed' \
	"$WORK/wide.log" || fail "label limit: $(cat "$WORK/wide.log")"
labels 57 >"$WORK/wide.yml"
"$PROMACCT" -R "$WORK/l.pcap" --once --config.file "$WORK/wide.yml" >"$WORK/wide.page" \
	2>"$WORK/wide.log" || fail "57 range labels refused: $(cat "$WORK/wide.log")"
grep -q 'l57="v"' "$WORK/wide.page" || fail "57th label missing on the page"
ok "one label limit: 65 labels per series is a usage error, 64 fit"
