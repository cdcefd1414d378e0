#!/usr/bin/env bash
# tests/saelens.sh — saed against the real SAELens package, both ways (issue 16): builds .venv-saelens
# (`make venv-saelens`: sae-lens pinned in requirements-saelens.txt, torch the local CPU wheel), starts a
# saed on a free port with a fresh data directory and runs tests/saelens_roundtrip.py against it (export
# of every architecture with an exact SAELens equivalent loaded by SAE.load_from_disk, import of SAEs
# saved by SAELens; encodings compared on the same rows; max abs differences printed). ~1 minute.
#
# Last line "N passed, N failed". When .venv-saelens cannot be built (no PyPI), it says so and skips,
# unless SAED_REQUIRE_VENV=1 (.ci/run sets it), where that is a failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
. tests/live.sh
live_venv venv-saelens .venv-saelens "the SAELens round trip"

live_saed saelens --workers 1
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
live_wait
.venv-saelens/bin/python tests/saelens_roundtrip.py "$B"
rc=$?
[ $rc -ne 0 ] && tail -n 20 "$dir/saed.log"
exit $rc
