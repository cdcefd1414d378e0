#!/usr/bin/env bash
# tests/check_release.sh — the daemon `make run` starts builds and works.
#
# `make run` and `make bench` build build-release/ with -DNDEBUG (Makefile,
# RELEASE_FLAGS), where every assert() compiles to nothing: a parameter used
# only in an assert is then unused, and -Werror stops the build. make test's
# own builds keep the asserts, so nothing else here would see it (it happened
# twice: core/tar.c and core/analysis_recovery.c broke `make run` for a stop).
# This builds what `make bench-build` builds (the release saed and the bench
# programs), starts the release saed on a free loopback port and a fresh data
# directory, and runs the README's walkthrough at a tiny size: a circles
# dataset, a train job to its end, the SAE and its decoder.
# Last line: "N passed, N failed"; exit status 1 when anything failed.
set -u
cd "$(dirname "$0")/.."
. tests/checklib.sh

check "make bench-build (the release saed and bench programs, -DNDEBUG) builds warnings-free" \
  make --no-print-directory bench-build || finish

saed_start build-release/saed
if ! check "the release saed starts and says where it listens" test -n "$port"; then
  cat "$tmp/saed.log"; finish
fi
base="http://127.0.0.1:$port/v1"

# post PATH BODY: the reply's body in $tmp/reply, its status echoed.
post() { curl -s -o "$tmp/reply" -w '%{http_code}' -XPOST "$base$1" -d "$2"; }
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/reply" "$1"; }

check "GET /v1/health is 200" test "$(curl -s -o /dev/null -w '%{http_code}' "$base/health")" = 200
check "a circles dataset is created (201)" \
  test "$(post /datasets '{"kind":"circles","name":"c20","params":{"n_circles":20,"dim":16,"p_active":0.1}}')" = 201
ds=$(field id 2>/dev/null)
check "a train job is queued (202)" test "$(post /jobs '{"type":"train","dataset":'"${ds:-0}"',
  "sae":{"arch":"topk","n_latents":80,"k":4},"train":{"steps":200,"batch_size":256,"eval_every":50}}')" = 202
job=$(field id 2>/dev/null)
state=
for _ in $(seq 1 600); do
  curl -s -o "$tmp/reply" "$base/jobs/${job:-0}"
  state=$(field state 2>/dev/null)
  case $state in succeeded|failed|cancelled) break ;; esac
  sleep 0.1
done
check "the job runs to its end (state: ${state:-none})" test "$state" = succeeded
[ "$state" = succeeded ] || grep -h . "$tmp/reply" "$tmp/saed.log" | tail -n 20
curl -s -o "$tmp/reply" "$base/jobs/${job:-0}"
sae=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["sae"])' "$tmp/reply" 2>/dev/null)
check "the job names its SAE" test -n "$sae"
check "the SAE's decoder is an (80, 16) float32 .npy with unit rows" /usr/bin/python3 -c '
import io, sys, urllib.request, numpy as np
d = np.load(io.BytesIO(urllib.request.urlopen(sys.argv[1]).read()))
assert d.shape == (80, 16) and d.dtype == np.float32, (d.shape, d.dtype)
assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-3)' "$base/saes/${sae:-0}/decoder.npy"
finish
