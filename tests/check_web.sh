#!/usr/bin/env bash
# tests/check_web.sh — the daemon that `make` builds serves its whole dashboard.
#
# Starts $BUILD/saed (default build/) with its default --web-dir and --openapi
# (both found beside the build, as `make run` and a user's `build/saed` use
# them) on a free loopback port, and fetches the index page, every stylesheet
# and script it references, every module those scripts import (followed
# transitively, so web/vendor/uPlot.esm.js, which charts.js imports, is
# included) and /v1/openapi.json: each must answer 200 with a non-empty body,
# stylesheets as text/css and scripts as JavaScript (a browser refuses a
# module of another type). `make test` builds only `all` before running this,
# so a 404 for web/vendor here means `make` no longer builds the vendor files.
# Last line: "N passed, N failed"; exit status 1 when anything failed.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
. tests/checklib.sh

saed_start "$BUILD/saed"
if ! check "saed starts and says where it listens" test -n "$port"; then
  cat "$tmp/saed.log"; finish
fi
base="http://127.0.0.1:$port"

n_fetched=0
# fetch PATH: 200, non-empty, the content type its extension needs; the body is kept in $tmp/body.
fetch() {
  local path=$1 want
  n_fetched=$((n_fetched + 1))
  local out="$tmp/body.$n_fetched"
  local meta
  meta=$(curl -s -o "$out" -w '%{http_code} %{content_type}' "$base$path") || meta="000 -"
  local code=${meta%% *} type=${meta#* }
  case $path in
    *.css) want='^text/css' ;;
    *.js|*.mjs) want='^(text|application)/javascript' ;;
    *.json) want='json' ;;
    *) want='^text/html' ;;
  esac
  cp "$out" "$tmp/body"
  [ "$code" = 200 ] && [ -s "$out" ] && [[ $type =~ $want ]] ||
    { echo "     GET $path: status $code, type '$type', $(wc -c <"$out") bytes" >&2; return 1; }
}

check "GET / (the dashboard's index)" fetch /
index="$tmp/body.$n_fetched"
check "GET /v1/openapi.json (found beside the build)" fetch /v1/openapi.json

# What the index loads: <link href="/..."> and <script src="/..."> (data: URLs need no fetch; the
# links of the <noscript> text are API routes, not the dashboard's files).
refs=$(grep -oE '<(link|script)[^>]*(href|src)="/[^"]*"' "$index" | grep -oE '(href|src)="/[^"]*"' |
       sed -E 's/^(href|src)="//; s/"$//' | sort -u)
check "the index references a stylesheet and a script" \
  bash -c '[ -n "$(grep -E "\.css$" <<<"$1")" ] && [ -n "$(grep -E "\.m?js$" <<<"$1")" ]' _ "$refs"

# Scripts: follow imports (import ... from '...', import '...', and the router's import('...'))
# relative to each module.
declare -A seen=()
queue=()
for r in $refs; do
  case $r in
    *.js|*.mjs) queue+=("$r") ;;
    *) check "GET $r (referenced by the index)" fetch "$r" ;;
  esac
done
while [ ${#queue[@]} -gt 0 ]; do
  m=${queue[0]}; queue=("${queue[@]:1}")
  [ -n "${seen[$m]:-}" ] && continue
  seen[$m]=1
  check "GET $m" fetch "$m" || continue
  dir=$(dirname "$m")
  for imp in $(grep -oE "(from|import)[[:space:]]*\(?[[:space:]]*['\"][./][^'\"]*['\"]" "$tmp/body" |
               sed -E "s/^(from|import)[[:space:]]*\(?[[:space:]]*['\"]//; s/['\"]$//"); do
    case $imp in
      /*) queue+=("$imp") ;;
      *) queue+=("$(realpath -ms "$dir/$imp")") ;;
    esac
  done
done
check "the modules include the vendored uPlot (web/vendor/uPlot.esm.js)" test -n "${seen[/vendor/uPlot.esm.js]:-}"
finish
