#!/usr/bin/env bash
# Runs each libFuzzer target named on the command line (built in $FUZZ_DIR) for
# $FUZZ_SECONDS on its seeds fuzz/corpus/<target>/ plus what earlier runs found
# ($FUZZ_DIR/corpus/<target>/, where new inputs go). Crashes are written to
# $FUZZ_DIR/crashes/; fuzz/<target>.dict, when present, is its libFuzzer
# dictionary. Prints one line per target and exits non-zero if any failed.
set -uo pipefail
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
export OPENBLAS_NUM_THREADS=1 # tiny shapes: threads only slow each input down
failed=0
for t in "$@"; do
  mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/crashes" "fuzz/corpus/$t"
  log="$FUZZ_DIR/$t.log"
  dict=(); [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  "$FUZZ_DIR/$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 "${dict[@]}" \
    -artifact_prefix="$FUZZ_DIR/crashes/$t-" "$FUZZ_DIR/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz: $t ok: ${execs:-?} inputs in ${FUZZ_SECONDS} s"
  else
    failed=1
    echo "fuzz: $t FAILED (exit $rc); see $log and $FUZZ_DIR/crashes/" >&2
    grep -m3 -E 'ERROR|runtime error|invariant broken' "$log" >&2
  fi
done
exit $failed
