#!/usr/bin/env bash
# The flags are defined once (config.c's table) and --help prints them with
# their defaults; README must name every flag and give the same default, in
# the flag's table row or in the paragraph that names it.
. "$(dirname "$0")/lib.sh"
README="$(dirname "$0")/../../README.md"
[ -f "$README" ] || fail "README.md not found"

"$PROMACCT" --help >"$WORK/help.txt"
# name <TAB> default, from the help text (help may wrap "(default X)").
awk '
function flush() {
	if (name == "") return
	d = ""
	if (match(help, /\(default [^)]*\)/)) d = substr(help, RSTART + 9, RLENGTH - 10)
	print name "\t" d
}
/^  (-[A-Za-z], |    )--/ {
	flush()
	match($0, /--[A-Za-z0-9.-]+/)
	name = substr($0, RSTART + 2, RLENGTH - 2)
	help = ""
	next
}
/^        / { sub(/^ +/, ""); help = help " " $0; next }
/^[^ ]/ { flush(); name = "" }
END { flush() }' "$WORK/help.txt" >"$WORK/flags.tsv"
n=$(wc -l <"$WORK/flags.tsv")
[ "$n" -gt 40 ] || fail "only $n flags read from --help"

bad=0
while IFS=$'\t' read -r name def; do
	re="--${name//./\\.}([^A-Za-z0-9.-]|\$)"
	if ! grep -Eq -- "$re" "$README"; then
		echo "README does not name --$name"
		bad=1
		continue
	fi
	[ -n "$def" ] || continue
	# The flag's own table row (its name in the first cell), not a
	# benchmark row that mentions it.
	rows=$(grep -E -- "^\| \`(-[A-Za-z], )?$re" "$README" || true)
	if [ -z "$rows" ]; then # the paragraphs that name it
		rows=$(awk -v RS= -v re="$re" '$0 ~ re' "$README")
	fi
	if ! grep -qF -- "$def" <<<"$rows"; then
		echo "README gives no default '$def' where it names --$name"
		bad=1
	fi
done <"$WORK/flags.tsv"
[ "$bad" = 0 ] || fail "README and --help disagree (fix README or the flag table in src/config.c)"
ok "README names all $n flags of --help, with the same defaults"
