#!/usr/bin/env bash
# The recording rules shipped in deploy/ are valid and compute what the
# README says (promtool's rule unit tests on synthetic series).
. "$(dirname "$0")/lib.sh"
RULES="$(cd "$(dirname "$0")/../.." && pwd)/deploy/recording_rules.yml"
promtool check rules "$RULES" || fail "promtool check rules"
sed "1i rule_files:\n  - $RULES" "$TESTDATA/rules_test.yml" >"$WORK/rules_test.yml"
promtool test rules "$WORK/rules_test.yml" || fail "promtool test rules"
ok "recording rules: 5m rates and monthly p95 per interface and per address"
