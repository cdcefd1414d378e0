#!/usr/bin/env bash
# scripts/check_openapi.sh — openapi.json and the router agree.
#
# Every (method, path) in api/server.c's route table (api_routes[]) must be an
# operation in openapi.json, and every operation in openapi.json a route, so
# neither can grow an endpoint the other does not know. HEAD (answered for
# every GET) and OPTIONS are not in either. tests/run.sh runs this with the
# other suites. Last line: "N passed, N failed"; exit status 1 on a mismatch.
set -u
cd "$(dirname "$0")/.."
table=api/server.c spec=openapi.json

# "METHOD /path" per line from the rows of api_routes[]: { "/v1/...", "GET", handler },
routes=$(sed -n '/api_routes\[\] = {/,/^};/p' "$table" |
         sed -nE 's/^[[:space:]]*\{[[:space:]]*"([^"]+)",[[:space:]]*"([A-Z]+)",.*/\2 \1/p' | sort -u)
ops=$(python3 -c '
import json, sys
spec = json.load(open(sys.argv[1]))
for path, item in spec.get("paths", {}).items():
    for method in item:
        if method in ("get", "put", "post", "delete", "patch"):
            print(method.upper(), path)
' "$spec" | sort -u) || { echo "$spec is not valid JSON (fix it: python3 -m json.tool $spec)"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0
if [ -n "$routes" ]; then passed=$((passed + 1)); echo "ok   $(wc -l <<<"$routes") routes read from $table"
else failed=$((failed + 1)); echo "FAIL no routes read from $table (has api_routes[] changed shape? update this script)"; fi
while read -r m p; do
  [ -z "$m" ] && continue
  if grep -qxF "$m $p" <<<"$ops"; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL $m $p is routed in $table but not in $spec: describe it there"; fi
done <<<"$routes"
while read -r m p; do
  [ -z "$m" ] && continue
  if grep -qxF "$m $p" <<<"$routes"; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL $m $p is in $spec but $table does not route it: remove it or add the route"; fi
done <<<"$ops"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
