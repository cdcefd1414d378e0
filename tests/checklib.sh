# tests/checklib.sh — sourced by the shell checks (check_web.sh, check_release.sh): a counter of
# checks, a temporary directory removed on exit, and a daemon started on a free loopback port.
#
#   check NAME CMD...     runs CMD; counts and prints "ok   NAME" or "FAIL NAME"
#   finish                prints "N passed, N failed" and exits (1 when anything failed)
#   saed_start BIN        starts BIN on 127.0.0.1:0 with a fresh --data-dir under $tmp, waits until it
#                         says where it listens; sets $pid and $port ($port empty when it did not start,
#                         its output is in $tmp/saed.log)
passed=0 failed=0
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/saed-check.XXXXXX")
pid=
checklib_cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap checklib_cleanup EXIT

saed_start() {
  "$1" --listen 127.0.0.1:0 --data-dir "$tmp/var" >"$tmp/saed.log" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 1 300); do
    port=$(grep -oE 'listening on http://127\.0\.0\.1:[0-9]+' "$tmp/saed.log" | grep -oE '[0-9]+$' | head -n 1)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
