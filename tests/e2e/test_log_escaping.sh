#!/usr/bin/env bash
# End-to-end: values from outside cannot break log lines (issue 13 defect 9).
# A capture file name holding a quote, a newline and a forged line, control
# bytes and invalid UTF-8: every logfmt line is one line starting with ts=,
# every --log.format json line parses.
. "$(dirname "$0")/lib.sh"

"$PCAPGEN" en10mb "$WORK/a.pcap" <"$TESTDATA/links.spec"
name=$'t".pcap\nts=2099 level=error msg="INJECTED" \x1b[31m \xff\xfe'
cp "$WORK/a.pcap" "$WORK/$name"

# Read (info lines name the file), then missing (the error names it).
for f in "$WORK/$name" "$WORK/missing-$name"; do
	rc=0
	"$PROMACCT" --once -R "$f" >/dev/null 2>"$WORK/logfmt.log" || rc=$?
	[ -s "$WORK/logfmt.log" ] || fail "no log lines"
	if grep -v '^ts=[0-9TZ:.-]* level=[a-z]* msg="' "$WORK/logfmt.log" | grep -q .; then
		cat -A "$WORK/logfmt.log"
		fail "a logfmt line does not start with ts= level= msg= (exit $rc)"
	fi
	grep -q 'INJECTED' "$WORK/logfmt.log" || fail "the file name is not logged at all"
done
# A usage error is one line too, whatever the argument holds.
rc=0
"$PROMACCT" -R x.pcap "$name" 2>"$WORK/usage.log" || rc=$?
[ "$rc" = 2 ] || fail "usage error exited $rc"
[ "$(wc -l <"$WORK/usage.log")" = 1 ] || fail "usage error is not one line: $(cat -A "$WORK/usage.log")"
ok "logfmt: hostile file names stay inside one line"

for f in "$WORK/$name" "$WORK/missing-$name"; do
	rc=0
	"$PROMACCT" --log.format json --once -R "$f" >/dev/null 2>"$WORK/json.log" || rc=$?
	[ "$(wc -l <"$WORK/json.log")" -ge 1 ] || fail "no JSON lines"
	while IFS= read -r line; do
		printf '%s' "$line" |
			jq -e 'type == "object" and has("ts") and has("level") and has("msg")' \
				>/dev/null 2>&1 || fail "not a JSON object: $line"
	done <"$WORK/json.log"
	jq -r '.err // .file // empty' "$WORK/json.log" | grep -q 'INJECTED' ||
		fail "the file name is not in the JSON log"
	ok "json: every line parses (exit $rc)"
done
