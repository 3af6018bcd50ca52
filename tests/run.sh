#!/bin/sh
# The whole test suite, as CI runs it:
#   1. installs the build and test dependencies (Debian 12 packages),
#   2. clang-format check, gcc build with -Werror, every unit and
#      end-to-end test (ctest),
#   3. clang build with -Werror,
#   4. the suite again under AddressSanitizer + UndefinedBehaviorSanitizer,
#   4b. each libFuzzer target for PROMACCT_FUZZ_SECONDS (default 45) s,
#   5. the suite again under ThreadSanitizer.
# Run as root: the live-capture test makes its own veth pair and namespace.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# Build trees live inside this checkout (ignored by git), so two checkouts
# on one machine never share a CMake cache.
OUT=${PROMACCT_TEST_BUILD:-$ROOT/build/test}
JOBS=$(nproc)

if [ "${PROMACCT_SKIP_DEPS:-0}" != 1 ]; then
	echo "== installing dependencies"
	sh deploy/install-deps.sh --test
fi

run_suite() { # NAME CC SANITIZE
	name=$1
	fresh_tree "$OUT/$name"
	echo "== $name: build"
	cmake -S "$ROOT" -B "$OUT/$name" -DCMAKE_C_COMPILER="$2" -DPROMACCT_WERROR=ON \
		-DPROMACCT_SANITIZE="$3" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$OUT/$name" -j"$JOBS" >"$OUT/$name.build.log" 2>&1 || {
		cat "$OUT/$name.build.log"
		return 1
	}
	echo "== $name: ctest"
	(cd "$OUT/$name" && ctest --output-on-failure --timeout 600 --repeat until-pass:2)
}

# A build tree configured from another source directory (a moved or
# re-cloned checkout) makes cmake refuse; start such a tree afresh.
fresh_tree() { # DIR
	cache="$1/CMakeCache.txt"
	if [ -f "$cache" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$cache"; then
		rm -rf "$1"
	fi
}

# Fuzzing (issue 10): each libFuzzer target runs for a fixed time under
# ASan+UBSan, starting from its corpus in tests/fuzz/corpus (read only; new
# inputs go to a scratch copy in the build tree). A finding fails the suite;
# its input is kept in $OUT/fuzz-findings/<target>/ to be added as a named
# regression input. One line per target: wall and CPU seconds, runs,
# coverage. The seed is fixed: a slower machine explores a prefix of the
# same input sequence, so CI meets no finding that a run here did not
# (PROMACCT_FUZZ_SEED=0 lets libFuzzer pick one, for longer local runs).
FUZZ_SECONDS=${PROMACCT_FUZZ_SECONDS:-45}
FUZZ_SEED=${PROMACCT_FUZZ_SEED:-1}
FUZZ_TARGETS="parse ranges config expo http config_file web_config"
run_fuzz() {
	fresh_tree "$OUT/fuzz"
	echo "== fuzz: build (clang, libFuzzer, ASan+UBSan)"
	cmake -S "$ROOT" -B "$OUT/fuzz" -DCMAKE_C_COMPILER=clang -DPROMACCT_FUZZ=ON \
		-DPROMACCT_WERROR=ON -DPROMACCT_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	targets=""
	for t in $FUZZ_TARGETS; do targets="$targets fuzz_$t"; done
	# shellcheck disable=SC2086
	cmake --build "$OUT/fuzz" -j"$JOBS" --target $targets >"$OUT/fuzz.build.log" 2>&1 || {
		cat "$OUT/fuzz.build.log"
		return 1
	}
	tck=$(getconf CLK_TCK)
	: >"$OUT/fuzz-summary.txt"
	failed=0
	for t in $FUZZ_TARGETS; do
		scratch="$OUT/fuzz-corpus/$t"
		found="$OUT/fuzz-findings/$t"
		rm -rf "$scratch" "$found"
		mkdir -p "$scratch" "$found"
		log="$OUT/fuzz-$t.log"
		# The child's CPU time, from the wrapper shell's cutime/cstime.
		set -- $(sh -c '"$@" >"$0" 2>&1; rc=$?; set -- $(cat /proc/$$/stat); echo $rc ${16} ${17}' \
			"$log" "$OUT/fuzz/tests/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
			-seed="$FUZZ_SEED" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$found/" "$scratch" "$ROOT/tests/fuzz/corpus/$t")
		rc=$1
		cpu=$(awk -v u="$2" -v s="$3" -v t="$tck" 'BEGIN { printf "%.1f", (u + s) / t }')
		runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log")
		cov=$(grep -a -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
		nfound=$(find "$found" -type f | wc -l)
		line="fuzz_$t: ${FUZZ_SECONDS}s, ${cpu}s CPU, ${runs:-?} runs, ${cov:-cov ?}, findings $nfound"
		echo "$line" | tee -a "$OUT/fuzz-summary.txt"
		if [ "$rc" != 0 ] || [ "$nfound" != 0 ]; then
			failed=1
			tail -n 60 "$log"
			echo "finding kept in $found/"
		fi
	done
	return $failed
}

mkdir -p "$OUT"
echo "== clang-format: sources are formatted"
clang-format --dry-run --Werror src/*.c include/promacct/*.h tests/*.c tests/*.h \
	tests/tools/*.c tests/fuzz/*.c tests/fuzz/*.h bench/*.c bench/*.h
run_suite gcc gcc ""
echo "== clang: build with -Werror"
fresh_tree "$OUT/clang"
cmake -S "$ROOT" -B "$OUT/clang" -DCMAKE_C_COMPILER=clang -DPROMACCT_WERROR=ON >/dev/null
cmake --build "$OUT/clang" -j"$JOBS" >"$OUT/clang.build.log" 2>&1 || {
	cat "$OUT/clang.build.log"
	exit 1
}
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite asan-ubsan clang "address,undefined"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_fuzz
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_suite tsan clang thread
echo "== all suites passed"
