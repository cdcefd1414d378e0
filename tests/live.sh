# tests/live.sh — sourced (not run) by the suites that drive a live saed with a tool from PyPI
# (tests/schemathesis.sh, tests/saelens.sh): the virtual environment they need, and a daemon on a free
# port with a fresh data directory. BUILD must be set.

# live_venv TARGET VENV TOOL: `make TARGET` builds VENV (output in /tmp/saed-TARGET.log). When it cannot
# (no PyPI), says so and exits the suite: a failure under SAED_REQUIRE_VENV=1 (.ci/run), else a printed
# skip, never a silent one.
live_venv() {
  local log=/tmp/saed-$1.log
  make --no-print-directory "$1" >"$log" 2>&1 && return 0
  echo "$3: cannot build $2 (make $1; see $log): $(tail -n 1 "$log")"
  if [ "${SAED_REQUIRE_VENV:-0}" = 1 ]; then echo "0 passed, 1 failed"; exit 1; fi
  echo "SKIPPED: $3 needs PyPI to build $2"
  echo "0 passed, 0 failed"
  exit 0
}

# live_saed TAG [ARGS...]: starts $BUILD/saed with ARGS on a free port and a fresh data directory
# /tmp/saed-TAG-XXXXXX; sets dir, B (the base URL) and pid. Set the EXIT trap that stops it next, then
# live_wait.
live_saed() {
  local port
  dir=$(mktemp -d "/tmp/saed-$1-XXXXXX")
  shift
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  B=http://127.0.0.1:$port
  "$BUILD/saed" --listen "127.0.0.1:$port" --data-dir "$dir" --log-level warn "$@" >"$dir/saed.log" 2>&1 &
  pid=$!
}

# Waits up to 10 s for GET /v1/health.
live_wait() {
  for _ in $(seq 100); do curl -sf "$B/v1/health" >/dev/null && return 0; sleep 0.1; done
  return 1
}
