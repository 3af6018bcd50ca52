#!/usr/bin/env bash
# The alert rules shipped in deploy/alerts.yml are valid, use only metric
# names promacct (or the Pushgateway, or Prometheus) exports, and fire as
# specified in tests/e2e/data/alerts_test.yml (promtool's rule unit tests).
. "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
RULES="$ROOT/deploy/alerts.yml"
promtool check rules "$RULES" || fail "promtool check rules"
sed "1i rule_files:\n  - $RULES" "$TESTDATA/alerts_test.yml" >"$WORK/alerts_test.yml"
promtool test rules "$WORK/alerts_test.yml" || fail "promtool test rules"
# Every promacct_* name in the rules is one the agent's sources register
# (or one being added: promacct_config_last_reload_successful, issue 8).
for name in $(grep -o 'promacct_[a-z0-9_]*' "$RULES" | sort -u); do
	case $name in
	promacct_config_last_reload_successful) continue ;;
	esac
	grep -rqF "\"$name\"" "$ROOT/src" || fail "alerts.yml uses $name, which src/ does not export"
done
ok "alert rules: promtool check and unit tests, metric names exist"
