#!/usr/bin/env bash
# Runs every test suite and sums their "N passed, N failed" lines. A suite
# that crashes or prints no summary counts as one failure. Output of each
# suite goes to $BUILD/test-logs/<suite>.log; failures are shown in full.
# The last line is the total: "N passed, N failed".
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
logs="$BUILD/test-logs"
mkdir -p "$logs"
total_pass=0 total_fail=0

run_suite() {  # name, command...
  local name=$1; shift
  local log="$logs/$name.log" start=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  local p=0 f=1
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  printf '%-12s %5d passed, %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
  if [ "$f" -ne 0 ]; then
    echo "---- $name output (exit $rc) ----"; tail -n 60 "$log"; echo "----"
  fi
}

# BLAS single-threaded, as the daemon runs it (include/par_gemm.h): a suite's pool of 2 is then 2
# threads, not 2 plus OpenBLAS's own spinning on the same cores (test_core took 45 s instead of
# 4 on a busy 2-core machine).
export OPENBLAS_NUM_THREADS=1

# Unit suites first, then the ones that drive a real daemon.
suites=$(ls tests/test_*.c | sed 's|tests/||; s|\.c$||' | grep -v '^test_api$')
for t in $suites test_api; do
  [ -f "tests/$t.c" ] && run_suite "$t" env BUILD="$BUILD" "$BUILD/tests/$t"
done
# Checks written as scripts: the router against openapi.json, and the dashboard's files as the
# daemon `make` builds serves them (make test builds only `all` first, so this covers `make`).
run_suite openapi scripts/check_openapi.sh
run_suite web env BUILD="$BUILD" tests/check_web.sh
# The release build `make run` starts (-DNDEBUG: asserts compile out, so a parameter used only in one
# breaks -Werror there and nowhere else), built and run through a tiny walkthrough.
run_suite release tests/check_release.sh
# The real-model example's data path (examples/lm_activations.py -> saed), on a fake model output:
# NumPy only (Debian's python3-numpy), so it runs everywhere; the model run itself is docs/real-data.md.
run_suite lm_data env BUILD="$BUILD" /usr/bin/python3 tests/test_lm_data.py
# Issue 15's robustness suite (standard library only, about 10 s): a hostile client on every route, 300
# slowloris sockets and 300 idle event streams, a kill -9 loop; prints the table of counts.
run_suite robust env BUILD="$BUILD" /usr/bin/python3 tests/test_robust.py
grep -h -A2 '^requests tried' "$logs/robust.log" 2>/dev/null
# The API against its own contract, by schemathesis (PyPI; tests/schemathesis.sh builds .venv).
run_suite schemathesis env BUILD="$BUILD" tests/schemathesis.sh
grep -h '^SKIPPED' "$logs/schemathesis.log" 2>/dev/null
# saed against the real SAELens package, both ways (PyPI; tests/saelens.sh builds .venv-saelens).
run_suite saelens env BUILD="$BUILD" tests/saelens.sh
grep -h '^SKIPPED' "$logs/saelens.log" 2>/dev/null
grep -h '^overall max' "$logs/saelens.log" 2>/dev/null
if [ -f tests/browser/run.mjs ]; then
  run_suite browser env BUILD="$BUILD" node tests/browser/run.mjs
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
