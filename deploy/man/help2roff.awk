# Turns the "Flags:" part of `promacct --help` into man page entries (.TP),
# so promacct(8) lists exactly the flags the binary has. Used by the build
# (CMakeLists.txt), output in the build tree.
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	sub(/^\./, "\\\\\\&.", s)
	sub(/^'/, "\\\\\\&'", s)
	return s
}
/^Flags:/ { inflags = 1; next }
inflags && /^[A-Z][a-z]*:/ { inflags = 0 }
!inflags { next }
/^  [ -]/ && /--/ {
	line = $0
	sub(/^ +/, "", line)
	n = split(line, w, " ")
	out = ""
	for (i = 1; i <= n; i++) {
		if (w[i] ~ /^-/)
			out = out (out == "" ? "" : " ") "\\fB" esc(w[i]) "\\fR"
		else
			out = out " \\fI" esc(w[i]) "\\fR"
	}
	print ".TP"
	print out
	next
}
/^        / {
	t = $0
	sub(/^ +/, "", t)
	print esc(t)
}
