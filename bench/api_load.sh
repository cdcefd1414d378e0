#!/usr/bin/env bash
# api_load.sh — the API under load, for `make bench` (bench/run.sh calls it):
# requests/s and latency of GET /v1/jobs/{id} while a training job runs.
#
#   bench/api_load.sh SAED_BINARY [DURATION_S] [SAED_ARGS...]   (default 10 s)
#
# SAED_ARGS are passed to the daemon (e.g. --api-threads 1). wrk runs one
# thread (API_LOAD_WRK_THREADS): 64 connections need no more, and on a
# 2-core machine every load-generator thread takes a core from the server.
#
# Starts SAED_BINARY on 127.0.0.1 with a fresh data directory (port 0, so the
# kernel picks a free port; the port is read from the daemon's "listening on"
# log line), creates a small circles dataset (100 circles in 32-D) and a train
# job far longer than the load (relu, 800 latents, 10^6 steps), waits until the
# job is running, then runs
#   wrk -t2 -c64 -dDURATION_S --latency http://127.0.0.1:PORT/v1/jobs/ID
# and checks the job is still running afterwards, so every request was served
# while training used the cores. Then it cancels the job and stops the daemon
# with SIGTERM. A trap always kills the daemon and removes the data directory.
#
# Output: one line on stdout,
#   api args=... conns=64 duration_s=10 requests_per_s=... p50_ms=... p99_ms=... non2xx=... socket_errors=...
#       train_sps_during=... train_sps_steps=...
# train_sps_during is the job's progress.samples_per_s read right after the
# load; train_sps_steps is the rate over the load itself (steps done during wrk
# times batch_size / wall time). Progress on stderr; any error is a message on
# stderr and exit 1. Needs curl, wrk and /usr/bin/python3 (installs nothing).
set -euo pipefail

CONNS=64
THREADS=${API_LOAD_WRK_THREADS:-1}
BATCH=1024
PY=/usr/bin/python3

die() { echo "api_load: $*" >&2; exit 1; }
say() { echo "api_load: $*" >&2; }

[ $# -ge 1 ] || die "usage: bench/api_load.sh SAED_BINARY [DURATION_S] [SAED_ARGS...]"
SAED=$1
DURATION=${2:-10}
shift $(($# >= 2 ? 2 : 1))
SAED_ARGS=("$@")
[ -x "$SAED" ] || die "$SAED is not an executable"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "DURATION_S must be a positive integer, not '$DURATION'"
for tool in curl wrk "$PY"; do
    command -v "$tool" >/dev/null || die "$tool is not installed (bench/run.sh installs wrk)"
done

TMP=$(mktemp -d /tmp/saed-api-load.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The daemon's last log lines, for error messages.
log_tail() { tail -n 5 "$TMP/saed.log" 2>/dev/null | sed 's/^/  saed: /' >&2 || true; }
fail() { echo "api_load: $*" >&2; log_tail; exit 1; }

# json FIELD.PATH < body: prints the value ("" for null), fails if the path is missing.
json() {
    "$PY" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print("" if v is None else v)' "$1"
}

# api METHOD PATH [BODY]: the response body on stdout; fails unless the status is 2xx.
api() {
    local out code
    out=$(curl -s -S -m 10 -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} \
        -w '\n%{http_code}' "$BASE$2") || fail "$1 $2: curl failed"
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    [[ "$code" == 2?? ]] || fail "$1 $2 answered $code: $out"
    printf '%s\n' "$out"
}

start_daemon() {
    "$SAED" --listen 127.0.0.1:0 --data-dir "$TMP/data" --log-level info "${SAED_ARGS[@]}" 2>"$TMP/saed.log" &
    PID=$!
    local port="" t
    for t in $(seq 100); do # up to 10 s for the "listening on" line
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\)/.*|\1|p' "$TMP/saed.log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$PID" 2>/dev/null || fail "the daemon exited at start"
        sleep 0.1
    done
    [ -n "$port" ] || fail "no 'listening on' line from the daemon within 10 s"
    BASE=http://127.0.0.1:$port/v1
    for t in $(seq 100); do
        curl -s -f -m 2 "$BASE/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "GET /v1/health did not answer within 10 s"
}

# Submits the dataset and the train job; prints the job id.
start_job() {
    local ds job
    ds=$(api POST /datasets '{"kind":"circles","name":"load","params":{"n_circles":100,"dim":32,"p_active":0.03}}' |
        json id) || fail "creating the dataset"
    job=$(api POST /jobs '{"type":"train","dataset":'"$ds"',
        "sae":{"arch":"relu","n_latents":800,"group_size":1,"sparsity_coef":1.0},
        "train":{"steps":1000000,"batch_size":'"$BATCH"',"lr":0.003,"lr_warmup_steps":500,"sparsity_warmup_steps":500}}' |
        json id) || fail "creating the train job"
    echo "$job"
}

# wait_running ID: up to 30 s for state "running" and a first progress step.
wait_running() {
    local t state step
    for t in $(seq 150); do
        state=$(api GET "/jobs/$1" | json state) || fail "reading job $1"
        case "$state" in
        running)
            step=$(api GET "/jobs/$1" | json progress.step 2>/dev/null || true)
            [ -n "$step" ] && [ "$step" != 0 ] && return 0 ;;
        queued) ;;
        *) fail "job $1 is $state, not running" ;;
        esac
        sleep 0.2
    done
    fail "job $1 did not start running within 30 s"
}

# parse_wrk < wrk output: "requests_per_s p50_ms p99_ms non2xx socket_errors".
parse_wrk() {
    "$PY" -c '
import re, sys
text = sys.stdin.read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]
def pct(p):
    m = re.search(r"^\s*" + p + r"%\s+([0-9.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if not m:
        sys.exit("no %s%% line in the wrk output" % p)
    return ms(*m.groups())
rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
if not rps:
    sys.exit("no Requests/sec line in the wrk output")
non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
print("%.0f %.3f %.3f %d %d" % (float(rps.group(1)), pct("50"), pct("99"), int(non.group(1)) if non else 0,
      sum(map(int, sock.groups())) if sock else 0))'
}

stop_daemon() {
    kill -TERM "$PID" 2>/dev/null || fail "the daemon is gone before SIGTERM"
    local t
    for t in $(seq 150); do # up to 15 s to stop
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$PID" 2>/dev/null && fail "the daemon did not stop within 15 s of SIGTERM"
    wait "$PID" 2>/dev/null || true
    PID=
}

main() {
    start_daemon
    say "daemon on ${BASE%/v1}, data in $TMP"
    local job step0 step1 t0 t1 wrk_out sps state stats
    job=$(start_job)
    wait_running "$job"
    say "job $job running; wrk -t$THREADS -c$CONNS -d${DURATION}s"
    step0=$(api GET "/jobs/$job" | json progress.step)
    t0=$(date +%s.%N)
    wrk_out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$BASE/jobs/$job" 2>&1) ||
        fail "wrk failed: $wrk_out"
    t1=$(date +%s.%N)
    local body
    body=$(api GET "/jobs/$job")
    state=$(json state <<<"$body")
    [ "$state" = running ] || fail "job $job is $state after the load, not running: the load did not run during training"
    step1=$(json progress.step <<<"$body")
    sps=$(json progress.samples_per_s <<<"$body")
    stats=$(parse_wrk <<<"$wrk_out") || fail "cannot read wrk's output: $wrk_out"
    api POST "/jobs/$job/cancel" >/dev/null
    stop_daemon
    local rps p50 p99 non2xx sockerr steps_sps
    read -r rps p50 p99 non2xx sockerr <<<"$stats"
    steps_sps=$("$PY" -c 'import sys; a, b, t0, t1, B = map(float, sys.argv[1:]); print("%.0f" % ((b - a) * B / (t1 - t0)))' \
        "$step0" "$step1" "$t0" "$t1" "$BATCH")
    printf 'api args=%s conns=%d duration_s=%d requests_per_s=%s p50_ms=%s p99_ms=%s non2xx=%s socket_errors=%s train_sps_during=%.0f train_sps_steps=%s\n' \
        "$(IFS=,; echo "${SAED_ARGS[*]:-default}" | tr -d ' ')" "$CONNS" "$DURATION" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "${sps:-0}" "$steps_sps"
}

main
