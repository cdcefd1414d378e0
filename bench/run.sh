#!/usr/bin/env bash
# bench/run.sh — `make bench`: saed's speed side by side with its references,
# in one run, on this machine. Prints a report and writes it to bench/RESULTS.md.
#
#   1. the bound: the median time of one dense cblas_sgemm of the encoder's
#      shape (batch x dim by dim x width), and the samples/s it implies
#   2. saed's steady-state training throughput for the seed's configuration
#      (circles 1600 x 200-D, widths 12800 and 25600, group sizes 1 and 2,
#      batch 4096): the SAE is first trained to a sparse state at a small
#      batch, then run at batch 4096 and timed step by step (bench_train.c)
#   3. the same step written densely in NumPy (hand-written backward) and in
#      PyTorch (autograd), against the same OpenBLAS (bench/ref_*.py; each
#      checks itself with --selftest first)
#   4. ratios saed / bound, saed / NumPy, saed / PyTorch, and every peak RSS
#   5. Jaccard co-activation for 12800 latents over 1M rows (bench_jaccard.c),
#      and GET /v1/jobs/{id} under wrk while a training job runs (api_load.sh)
#
# Every measurement is its own process (its own peak RSS), run one after the
# other, never two at once. Medians over many steps; the machine is shared and
# noisy, so read the ratios, not the absolute figures. Environment (defaults):
#   BENCH_BUILD (build-release)  BENCH_OUT (bench/RESULTS.md)  BENCH_THREADS (nproc)
#   BENCH_WIDTHS ("12800 25600")  BENCH_GROUP_SIZES ("1 2")
#   BENCH_STEPS (60) timed saed steps  BENCH_PRETRAIN (3000) small-batch steps before them
#   (the pretrained states are kept in $BENCH_BUILD/bench-state/ and reused by later runs
#   with the same settings; delete the directory to pretrain again)
#   BENCH_REF_STEPS (5) timed reference steps  BENCH_SPARSITY (0.2)  BENCH_LR (0.003)
#   BENCH_JACCARD_ROWS (1000000)  BENCH_API_SECONDS (10)
set -u
cd "$(dirname "$0")/.."
BUILD=${BENCH_BUILD:-build-release}
OUT=${BENCH_OUT:-bench/RESULTS.md}
T=${BENCH_THREADS:-$(nproc)}
WIDTHS=${BENCH_WIDTHS:-"12800 25600"}
GSIZES=${BENCH_GROUP_SIZES:-"1 2"}
STEPS=${BENCH_STEPS:-60}
PRETRAIN=${BENCH_PRETRAIN:-3000}
REF_STEPS=${BENCH_REF_STEPS:-5}
SPARSITY=${BENCH_SPARSITY:-0.2}
LR=${BENCH_LR:-0.003}
JROWS=${BENCH_JACCARD_ROWS:-1000000}
API_S=${BENCH_API_SECONDS:-10}
PY=/usr/bin/python3
BATCH=4096
LOG=$(mktemp /tmp/saed-bench.XXXXXX)
trap 'rm -f "$LOG"' EXIT

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# kv LINE KEY: the value of KEY=... in a key=value line.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
# ratio A B: A / B to 2 decimals, or - when either is missing.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# run NAME CMD...: runs one measurement, keeps its key=value line (the last line of stdout) in $LOG.
run() {
    local name=$1 line
    shift
    say "$name: $*"
    line=$("$@" | tail -n 1) || { say "$name failed"; line="$name failed=1"; }
    echo "$name $line" >>"$LOG"
    echo "$line"
}

get() { grep "^$1 " "$LOG" | tail -n 1 | cut -d' ' -f2-; }

machine() {
    local cpu mem blas
    cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
    mem=$(free -g | awk '/^Mem:/ { print $2 " GiB" }')
    blas=$("$BUILD/bench/bench_train" --machine)
    echo "$cpu, $(nproc) cores, $mem; Linux $(uname -r); $blas;" \
        "numpy $("$PY" -c 'import numpy; print(numpy.__version__)'), torch $("$PY" -c 'import torch; print(torch.__version__)');" \
        "saed $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'); $(date -u +%Y-%m-%dT%H:%MZ)"
}

measure() {
    for tool in "$BUILD/bench/bench_train" "$BUILD/bench/bench_jaccard" "$BUILD/saed"; do
        [ -x "$tool" ] || die "$tool is missing: run make bench"
    done
    "$PY" bench/ref_numpy.py --selftest >&2 || die "bench/ref_numpy.py --selftest failed: the reference is wrong"
    "$PY" bench/ref_torch.py --selftest >&2 || die "bench/ref_torch.py --selftest failed: the reference is wrong"
    local w s
    mkdir -p "$BUILD/bench-state"
    for w in $WIDTHS; do
        run "gemm-$w" "$BUILD/bench/bench_train" --gemm "$w" --threads "$T" --reps 20 >/dev/null
    done
    for w in $WIDTHS; do
        for s in $GSIZES; do
            local args=(--width "$w" --group-size "$s" --threads "$T" --pretrain "$PRETRAIN" --warmup 20
                --steps "$STEPS" --sparsity "$SPARSITY" --lr "$LR"
                --state "$BUILD/bench-state/w$w-s$s-p$PRETRAIN-c$SPARSITY-lr$LR.ckpt")
            say "saed-$w-$s: pretraining (skipped when $BUILD/bench-state/ has it)"
            "$BUILD/bench/bench_train" "${args[@]}" --prepare >/dev/null || die "pretraining $w/$s failed"
            run "saed-$w-$s" "$BUILD/bench/bench_train" "${args[@]}" >/dev/null
            run "numpy-$w-$s" "$PY" bench/ref_numpy.py --width "$w" --group-size "$s" --threads "$T" \
                --warmup 2 --steps "$REF_STEPS" --sparsity "$SPARSITY" --lr "$LR" >/dev/null
            run "torch-$w-$s" "$PY" bench/ref_torch.py --width "$w" --group-size "$s" --threads "$T" \
                --warmup 2 --steps "$REF_STEPS" --sparsity "$SPARSITY" --lr "$LR" >/dev/null
        done
    done
    run jaccard "$BUILD/bench/bench_jaccard" --latents 12800 --rows "$JROWS" --reps 3 >/dev/null
    run api bench/api_load.sh "$BUILD/saed" "$API_S" >/dev/null
    run api1 bench/api_load.sh "$BUILD/saed" "$API_S" --api-threads 1 >/dev/null
}

report_bound() {
    echo "## 1. The bound: one encoder GEMM (batch $BATCH x 200 by 200 x width, $T threads)"
    echo
    echo "| width | median s | GFLOP/s | samples/s |"
    echo "|---|---|---|---|"
    local w g
    for w in $WIDTHS; do
        g=$(get "gemm-$w")
        echo "| $w | $(kv "$g" median_s) | $(kv "$g" gflops) | $(kv "$g" sps) |"
    done
    echo
}

report_train() {
    echo "## 2-4. Training throughput, samples/s (median of the timed steps; p10-p90 for saed), and ratios"
    echo
    echo "| width | group size | saed | saed / bound | NumPy | saed / NumPy | PyTorch | saed / PyTorch | peak RSS MB saed / NumPy / PyTorch | saed L0 (groups), FVE while timed |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    local w s a n t b
    for w in $WIDTHS; do
        b=$(kv "$(get "gemm-$w")" sps)
        for s in $GSIZES; do
            a=$(get "saed-$w-$s") n=$(get "numpy-$w-$s") t=$(get "torch-$w-$s")
            echo "| $w | $s | $(kv "$a" sps_median) ($(kv "$a" sps_p10)-$(kv "$a" sps_p90)) |" \
                "$(ratio "$(kv "$a" sps_median)" "$b") | $(kv "$n" sps_median) | $(ratio "$(kv "$a" sps_median)" "$(kv "$n" sps_median)") |" \
                "$(kv "$t" sps_median) | $(ratio "$(kv "$a" sps_median)" "$(kv "$t" sps_median)") |" \
                "$(kv "$a" rss_mb) / $(kv "$n" rss_mb) / $(kv "$t" rss_mb) |" \
                "$(kv "$a" l0_end) ($(kv "$a" l0g_end)), $(kv "$a" fve_end) |"
        done
    done
    echo
    echo "saed: $PRETRAIN steps of batch 512 from a fresh SAE (sparsity_coef $SPARSITY, orth_coef 0.01 for group" \
        "size 2, lr $LR), then batch $BATCH: 20 untimed steps, $STEPS timed (bench/bench_train.c). NumPy and" \
        "PyTorch: 2 untimed steps, then $REF_STEPS timed, from a fresh SAE (a dense step costs the same at any" \
        "sparsity), rows generated before timing (which favours them)."
    echo
}

report_api() { # NAME WHAT
    local a
    a=$(get "$1")
    echo "- GET /v1/jobs/{id} under wrk ($2), $(kv "$a" conns) connections for $(kv "$a" duration_s) s while a job" \
        "trains: $(kv "$a" requests_per_s) requests/s, p50 $(kv "$a" p50_ms) ms, p99 $(kv "$a" p99_ms) ms," \
        "$(kv "$a" non2xx) non-2xx, $(kv "$a" socket_errors) socket errors; the job trained at" \
        "$(kv "$a" train_sps_steps) samples/s meanwhile (job threads at nice 10)."
}

report_rest() {
    local j
    j=$(get jaccard)
    echo "## 5. Analysis and the API"
    echo
    echo "- Jaccard co-activation, 12800 latents x $(kv "$j" rows) rows (L0 $(kv "$j" l0)): median $(kv "$j" total_s_median) s" \
        "(build $(kv "$j" build_s) s, finish $(kv "$j" finish_s) s, neighbour sweep $(kv "$j" sweep_s) s," \
        "group means $(kv "$j" groups_s) s), peak RSS $(kv "$j" rss_mb) MB."
    report_api api "the default 2 event-loop threads"
    report_api api1 "--api-threads 1"
    echo
}

report_targets() {
    local a n t b j api api1
    a=$(kv "$(get saed-12800-2)" sps_median) n=$(kv "$(get numpy-12800-2)" sps_median)
    t=$(kv "$(get torch-12800-2)" sps_median) b=$(kv "$(get gemm-12800)" sps)
    j=$(get jaccard) api=$(get api) api1=$(get api1)
    echo "## Targets (group size 2, width 12800, batch $BATCH)"
    echo
    echo "| target | measured | met |"
    echo "|---|---|---|"
    check() { awk -v v="$2" -v lim="$3" -v op="$4" 'BEGIN { if (v == "" || v == "-") print "-";
        else if ((op == ">=" && v + 0 >= lim) || (op == "<" && v + 0 < lim)) print "yes"; else print "no" }'; }
    local r1 r2 r3
    r1=$(ratio "$a" "$b") r2=$(ratio "$a" "$n") r3=$(ratio "$a" "$t")
    echo "| saed >= 0.6 x the bound | $r1 | $(check x "$r1" 0.6 ">=") |"
    echo "| saed >= 7 x NumPy | $r2 | $(check x "$r2" 7 ">=") |"
    echo "| saed >= 25 x PyTorch | $r3 | $(check x "$r3" 25 ">=") |"
    local rss
    rss=$(for s in $GSIZES; do kv "$(get "saed-25600-$s")" rss_mb; done | sort -n | tail -n 1)
    echo "| peak RSS at width 25600 < 800 MB | ${rss:-"-"} MB | $(check x "$rss" 800 "<") |"
    echo "| Jaccard 1M rows x 12800 latents < 5 s | $(kv "$j" total_s_median) s | $(check x "$(kv "$j" total_s_median)" 5 "<") |"
    echo "| GET /v1/jobs/{id} p99 < 5 ms at 64 connections while training (2 API threads) | $(kv "$api" p99_ms) ms | $(check x "$(kv "$api" p99_ms)" 5 "<") |"
    echo "| the same with --api-threads 1 | $(kv "$api1" p99_ms) ms | $(check x "$(kv "$api1" p99_ms)" 5 "<") |"
    echo
}

main() {
    local m
    m=$(machine)
    say "machine: $m"
    measure
    {
        echo "# make bench results"
        echo
        echo "machine: $m"
        echo
        report_bound
        report_train
        report_rest
        report_targets
        echo "Raw lines (each measurement's own output):"
        echo
        echo '```'
        cat "$LOG"
        echo '```'
    } >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
    cat "$OUT"
}

main
