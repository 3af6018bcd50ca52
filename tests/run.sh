#!/bin/sh
# The whole test suite, as CI runs it:
#   1. installs the build and test dependencies (Debian 12 packages),
#   2. clang-format check, gcc build with -Werror, every unit and
#      end-to-end test (ctest),
#   3. clang build with -Werror,
#   4. the suite again under AddressSanitizer + UndefinedBehaviorSanitizer,
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
	(cd "$OUT/$name" && ctest --output-on-failure --timeout 600)
}

# A build tree configured from another source directory (a moved or
# re-cloned checkout) makes cmake refuse; start such a tree afresh.
fresh_tree() { # DIR
	cache="$1/CMakeCache.txt"
	if [ -f "$cache" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$cache"; then
		rm -rf "$1"
	fi
}

mkdir -p "$OUT"
echo "== clang-format: sources are formatted"
clang-format --dry-run --Werror src/*.c include/promacct/*.h tests/*.c tests/*.h \
	tests/tools/*.c bench/*.c
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
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_suite tsan clang thread
echo "== all suites passed"
