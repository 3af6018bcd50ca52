#!/usr/bin/env bash
# End-to-end: captures written by pcapgen (pcap_dump and hand-written
# pcapng / swapped files) are read with --once; the page must match the
# expected numbers exactly and pass promtool's linter.
. "$(dirname "$0")/lib.sh"
DATA=$TESTDATA

check_page() { # NAME PAGE EXPECTED
	promtool check metrics <"$2" >"$WORK/$1.lint" 2>&1 || {
		cat "$WORK/$1.lint"
		fail "$1: promtool check metrics complained"
	}
	if ! diff -u "$3" <(stable "$2") >"$WORK/$1.diff"; then
		cat "$WORK/$1.diff"
		fail "$1: page differs from $3"
	fi
	ok "$1"
}

# Ethernet with VLAN/QinQ/PPPoE, non-IP, runts and broken IP headers.
"$PCAPGEN" en10mb "$WORK/eth.pcap" <"$DATA/ethernet.spec"
"$PROMACCT" -R "$WORK/eth.pcap" --once -r '10.0.0.0/30:customer=a' -r 10.0.0.0/8:customer=b \
	-r '[2001:db8::]-[2001:db8::ffff]:site=x' >"$WORK/eth.out" 2>"$WORK/eth.log"
check_page ethernet "$WORK/eth.out" "$DATA/ethernet.expected"

# Every link type and savefile format: same traffic, same numbers; the
# header length differs per link type, so each has its own expected file.
for lt in en10mb linux_sll linux_sll2 raw ipv4 ipv6 null loop; do
	spec="$DATA/links.spec"
	if [ "$lt" = ipv4 ]; then
		spec="$WORK/v4.spec"
		grep -v ip6 "$DATA/links.spec" >"$spec"
	elif [ "$lt" = ipv6 ]; then
		spec="$WORK/v6.spec"
		grep -v ip4 "$DATA/links.spec" >"$spec"
	fi
	for fmt in pcap pcap-swapped pcapng pcapng-swapped; do
		f="$WORK/$lt.$fmt"
		"$PCAPGEN" "$lt" "$f" "$fmt" <"$spec"
		"$PROMACCT" --read "$f" --once -r 0.0.0.0/0 -r ::/0 >"$WORK/$lt-$fmt.out" \
			2>"$WORK/$lt-$fmt.log"
		sed -i "s/interface=\"$lt.$fmt\"/interface=\"FILE\"/" "$WORK/$lt-$fmt.out"
		check_page "$lt-$fmt" "$WORK/$lt-$fmt.out" "$DATA/link-$lt.expected"
	done
done

# Wire lengths no real frame has (issue 13 item 3), in every savefile
# format: the pcapng EPB with original length 0xFFFFFFFF around a 134-byte
# frame, pcap records with 2^31 and 300000, lengths far above the IP
# header's, below the captured length and below the link-layer header are
# all bad_length, counted with the bytes captured, never per address.
for fmt in pcap pcap-swapped pcapng pcapng-swapped; do
	f="$WORK/len.$fmt"
	"$PCAPGEN" en10mb "$f" "$fmt" <"$DATA/lengths.spec"
	"$PROMACCT" -R "$f" --once -r 10.0.0.0/8 >"$WORK/len-$fmt.out" 2>"$WORK/len-$fmt.log"
	sed -i "s/interface=\"len.$fmt\"/interface=\"FILE\"/" "$WORK/len-$fmt.out"
	check_page "lengths-$fmt" "$WORK/len-$fmt.out" "$DATA/lengths.expected"
done

# Two files with the same base name are one interface; two different names
# are two interfaces.
mkdir -p "$WORK/a" "$WORK/b"
"$PCAPGEN" en10mb "$WORK/a/x.pcap" <"$DATA/links.spec"
"$PCAPGEN" en10mb "$WORK/b/x.pcap" <"$DATA/links.spec"
"$PCAPGEN" en10mb "$WORK/b/y.pcap" <"$DATA/links.spec"
"$PROMACCT" -R "$WORK/a/x.pcap" -R "$WORK/b/x.pcap" -R "$WORK/b/y.pcap" --once \
	-r 10.0.0.0/8 >"$WORK/multi.out" 2>"$WORK/multi.log"
[ "$(value_of "$WORK/multi.out" 'promacct_packet_size_bytes_all_count{interface="x.pcap"}')" = 10 ] ||
	fail "same base name must merge"
[ "$(value_of "$WORK/multi.out" 'promacct_packet_size_bytes_all_count{interface="y.pcap"}')" = 5 ] ||
	fail "other base name must stay apart"
[ "$(value_of "$WORK/multi.out" 'promacct_packet_size_bytes_ipv4_tx_count{interface="x.pcap",ip="10.0.0.1",protocol="tcp"}')" = 4 ] ||
	fail "merged address histogram"
promtool check metrics <"$WORK/multi.out" || fail "multi: lint"
ok "files with the same base name merge"

# Two files with one base name hold each address once against the cap
# (issue 13 item 4): 4 distinct addresses fit in --max-addresses 4.
"$PROMACCT" -R "$WORK/a/x.pcap" -R "$WORK/b/x.pcap" --once -r 0.0.0.0/0 -r ::/0 \
	--max-addresses 4 >"$WORK/cap.out" 2>"$WORK/cap.log"
[ "$(value_of "$WORK/cap.out" promacct_tracked_addresses)" = 4 ] || fail "cap: tracked"
[ "$(value_of "$WORK/cap.out" 'promacct_untracked_packets_total{interface="x.pcap"}')" = 0 ] ||
	fail "cap: an address held by the other file was refused"
[ "$(value_of "$WORK/cap.out" 'promacct_packet_size_bytes_ipv6_rx_count{interface="x.pcap",ip="2001:db8::1",protocol="tcp"}')" = 2 ] ||
	fail "cap: merged IPv6 histogram"
ok "files with the same base name count each address once against the cap"

# A BPF filter, custom buckets and the address cap.
"$PROMACCT" -R "$WORK/eth.pcap" --once -f 'tcp' --buckets 100,1000 -r 10.0.0.0/8 \
	--max-addresses 1 >"$WORK/filter.out" 2>"$WORK/filter.log"
# BPF "tcp" matches the 3 plain TCP frames, the 2 with broken IPv4 headers
# and the 2 cut short after the protocol field (not VLAN/PPPoE ones).
[ "$(value_of "$WORK/filter.out" 'promacct_packet_size_bytes_all_count{interface="eth.pcap"}')" = 7 ] ||
	fail "filter tcp: 7 frames expected"
[ "$(value_of "$WORK/filter.out" 'promacct_packet_size_bytes_all_bucket{interface="eth.pcap",le="100"}')" = 5 ] ||
	fail "custom buckets"
[ "$(value_of "$WORK/filter.out" 'promacct_tracked_addresses')" = 1 ] || fail "max-addresses"
# over the cap, 10.0.0.2's 3 observations go to the range's overflow series
[ "$(value_of "$WORK/filter.out" 'promacct_packet_size_bytes_ipv4_rx_count{interface="eth.pcap",ip="other",protocol="tcp"}')" = 3 ] ||
	fail "overflow count"
[ "$(value_of "$WORK/filter.out" 'promacct_untracked_packets_total{interface="eth.pcap"}')" = 0 ] ||
	fail "untracked count"
ok "filter, buckets, max-addresses"

# A file truncated in the middle of its last record (issue 13 item 6):
# the 59 whole packets are printed, the error names the file, exit 1.
for fmt in pcap pcapng; do
	printf 'ip4 10.0.0.1 10.0.0.2 6 100 count 60\n' | "$PCAPGEN" en10mb "$WORK/full.$fmt" "$fmt"
	head -c $(($(stat -c %s "$WORK/full.$fmt") - 40)) "$WORK/full.$fmt" >"$WORK/t.$fmt"
	rc=0
	"$PROMACCT" -R "$WORK/t.$fmt" --once -r 10.0.0.0/8 >"$WORK/t-$fmt.out" 2>"$WORK/t-$fmt.log" || rc=$?
	[ "$rc" = 1 ] || fail "truncated $fmt: exit status $rc, want 1"
	[ "$(value_of "$WORK/t-$fmt.out" "promacct_packet_size_bytes_all_count{interface=\"t.$fmt\"}")" = 59 ] ||
		fail "truncated $fmt: the 59 packets read are not printed"
	[ "$(value_of "$WORK/t-$fmt.out" "promacct_packet_size_bytes_ipv4_tx_count{interface=\"t.$fmt\",ip=\"10.0.0.1\",protocol=\"tcp\"}")" = 59 ] ||
		fail "truncated $fmt: per-address counts"
	promtool check metrics <"$WORK/t-$fmt.out" || fail "truncated $fmt: lint"
	grep -q "level=error msg=\"capture file not read to its end\" file=$WORK/t.$fmt packets_read=59 " \
		"$WORK/t-$fmt.log" || fail "truncated $fmt: the error does not name the file"
done
ok "a truncated file: what was read is printed, the error names the file, exit 1"

# A pcapng whose interfaces have different link types (issue 13 item 7):
# libpcap reads one link type per file; the packets before the second
# interface are printed, the log says what is unsupported, exit 1.
printf 'ip4 10.0.0.1 10.0.0.2 6 100 count 3\niface raw\nip4 10.0.0.1 10.0.0.2 6 86 count 2\n' |
	"$PCAPGEN" en10mb "$WORK/mixed.pcapng" pcapng
rc=0
"$PROMACCT" -R "$WORK/mixed.pcapng" --once -r 10.0.0.0/8 >"$WORK/mixed.out" 2>"$WORK/mixed.log" || rc=$?
[ "$rc" = 1 ] || fail "mixed link types: exit status $rc, want 1"
[ "$(value_of "$WORK/mixed.out" 'promacct_packet_size_bytes_all_count{interface="mixed.pcapng"}')" = 3 ] ||
	fail "mixed link types: the packets read before are not printed"
grep -q 'unsupported: its interfaces have different link types' "$WORK/mixed.log" ||
	fail "mixed link types: the log does not say what is unsupported"
ok "pcapng with interfaces of different link types: unsupported named, what was read kept"

# An unsupported link type is a start-up error naming it.
"$PCAPGEN" dlt=105 "$WORK/wifi.pcap" <"$DATA/links.spec"
if "$PROMACCT" -R "$WORK/wifi.pcap" --once >"$WORK/wifi.out" 2>"$WORK/wifi.log"; then
	fail "802.11 capture accepted"
fi
grep -q 'unsupported link type IEEE802_11' "$WORK/wifi.log" || fail "link type not named"
ok "unsupported link type rejected"
