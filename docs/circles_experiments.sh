#!/usr/bin/env bash
# docs/circles_experiments.sh — the circles experiments of docs/experiments.md, through the REST API.
#
#   docs/circles_experiments.sh [BASE_URL] < CONFIGS      (default http://127.0.0.1:8321/v1)
#   docs/circles_experiments.sh BASE_URL --sae ID GROUP_SIZE   the figures of an SAE already trained
#
# Needs a running saed (make run). Creates (once) the reduced circles dataset
# (N_CIRCLES circles in DIM-D, p_active P_ACTIVE, the seed's 3.2 active per row by default),
# then submits one train job per config line on stdin
#   NAME ARCH N_LATENTS GROUP_SIZE SPARSITY ORTH THRESHOLD K STEPS BATCH LR [TRAIN_EXTRA]
# (K is "-" unless arch is topk/batchtopk; TRAIN_EXTRA, optional, more train fields as
# key=value[,key=value], e.g. resample_every=2000; a key sae.NAME goes to the sae object instead,
# e.g. sae.bandwidth=0.05; "#" starts a comment), all at once so the daemon
# runs them back to back, and as each succeeds prints one row of figures computed from the
# daemon's own metrics and from decoder.npy and planes.npy:
#   fve, L0 (latents, groups), dead fraction, rows in a circle plane (projection keeps
#   >= 0.99 of the norm), circles with a row in their plane, mean rows per circle, the same
#   counting only live rows (the latent fires on its own circle: each circle alone at radius
#   1, 64 angles, through POST /saes/{id}/encode, the trained inference rule), and for
#   group_size 2: groups whose two rows share one circle's plane, those whose two members
#   both fire on that circle, and the median within-group |cos|.
# Prints a markdown table on stdout; progress on stderr.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8321/v1}
N_CIRCLES=${N_CIRCLES:-400}
DIM=${DIM:-50}
P_ACTIVE=${P_ACTIVE:-0.008}
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/saed-circles.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

say() { echo "circles: $*" >&2; }
json() { "$PY" -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print("" if v is None else v)' "$1"; }
post() { curl -sf -XPOST "$BASE$1" -H 'Content-Type: application/json' -d "$2"; }

dataset() {
    local name="c${N_CIRCLES}d${DIM}p${P_ACTIVE}" id
    id=$(curl -sf "$BASE/datasets?limit=1000" | "$PY" -c 'import json,sys
for d in json.load(sys.stdin)["items"]:
    if d["name"] == sys.argv[1]: print(d["id"]); break' "$name")
    if [ -z "$id" ]; then
        id=$(post /datasets "{\"kind\":\"circles\",\"name\":\"$name\",\"params\":{\"n_circles\":$N_CIRCLES,\"dim\":$DIM,\"p_active\":$P_ACTIVE}}" | json id)
    fi
    curl -sf "$BASE/datasets/$id/planes.npy" -o "$TMP/planes.npy"
    echo "$id"
}

# submit DATASET ARCH N S C ORTH THR K STEPS BATCH LR [EXTRA]: prints the job id.
submit() {
    local more="" extra="" kv
    [ "$8" != - ] && more=",\"k\":$8"
    for kv in $(tr ',' ' ' <<<"${12:-}"); do
        case $kv in
        sae.*) kv=${kv#sae.}; more+=",\"${kv%%=*}\":${kv#*=}" ;;
        *) extra+=",\"${kv%%=*}\":${kv#*=}" ;;
        esac
    done
    post /jobs "{\"type\":\"train\",\"dataset\":$1,\"sae\":{\"arch\":\"$2\",\"n_latents\":$3,\"group_size\":$4,
        \"sparsity_coef\":$5,\"orth_coef\":$6,\"threshold\":$7$more},\"train\":{\"steps\":$9,\"batch_size\":${10},
        \"lr\":${11},\"lr_warmup_steps\":$(( $9 / 20 )),\"sparsity_warmup_steps\":$(( $9 / 10 ))$extra}}" | json id
}

# wait_sae JOB: prints the SAE id once the job succeeded; 1 if it failed.
wait_sae() {
    local job=$1 state
    while :; do
        state=$(curl -sf "$BASE/jobs/$job" | json state)
        case $state in
        succeeded) curl -sf "$BASE/jobs/$job" | json result.sae; return 0 ;;
        failed | cancelled) say "job $job $state: $(curl -sf "$BASE/jobs/$job" | json error)"; return 1 ;;
        esac
        sleep 5
    done
}

# figures SAE GROUP_SIZE: the table cells after the name.
figures() {
    curl -sf "$BASE/saes/$1/decoder.npy" -o "$TMP/decoder.npy"
    curl -sf "$BASE/saes/$1" >"$TMP/sae.json"
    "$PY" - "$TMP" "$2" "$BASE/saes/$1/encode" <<'EOF'
import json, sys, urllib.request
import numpy as np
tmp, s, encode_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sae = json.load(open(tmp + "/sae.json"))
m, per_req = sae["metrics"], sae.get("encode_max_rows", 512)
D = np.load(tmp + "/decoder.npy")                      # (n, dim)
P = np.load(tmp + "/planes.npy")                       # (circles, 2, dim)
Q = np.stack([np.linalg.qr(p.T)[0].T for p in P])      # (circles, 2, dim) orthonormal
U = D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)
kept = np.linalg.norm(np.einsum("nd,ckd->nck", U, Q), axis=2)   # (n, circles)
best, which = kept.max(1), kept.argmax(1)
inp = best >= 0.99
rows_per = np.bincount(which[inp], minlength=len(P))
# live[i]: latent i fires somewhere on the circle whose plane holds its row (that circle alone)
th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
X = np.cos(th)[None, :, None] * P[:, None, 0] + np.sin(th)[None, :, None] * P[:, None, 1]   # (circles, 64, dim)
fires = np.zeros((len(P), len(D)), bool)                                                       # (circles, n)
rows = np.round(X.reshape(-1, X.shape[2]), 6)                                                  # (circles * 64, dim)
per_req = min(per_req, 512)     # rows a request: the SAE's encode bound, and under the 1 MiB body limit
for r0 in range(0, len(rows), per_req):
    body = json.dumps({"rows": rows[r0:r0 + per_req].tolist()}).encode()
    req = urllib.request.Request(encode_url, body, {"Content-Type": "application/json"})
    for r, lat in enumerate(json.load(urllib.request.urlopen(req))["latents"]):
        fires[(r0 + r) // 64, [i for i, v in lat if v != 0]] = True
live = inp & fires[which, np.arange(len(D))]
live_per = np.bincount(which[live], minlength=len(P))
cells = ["%.3f" % m["fve"], "%.1f (%.1f)" % (m["l0"], m["l0_groups"]), "%.3f" % m["dead_frac"],
         "%.3f" % inp.mean(), "%d" % (rows_per > 0).sum(), "%.2f" % rows_per.mean(), "%.2f" % live_per.mean()]
if s == 2:
    a, b = inp[0::2] & inp[1::2], which[0::2] == which[1::2]
    cos = np.abs(np.einsum("gd,gd->g", U[0::2], U[1::2]))
    cells += ["%.3f" % (a & b).mean(), "%.3f" % (live[0::2] & live[1::2] & b).mean(), "%.3f" % np.median(cos)]
else:
    cells += ["-", "-", "-"]
print(" | ".join(cells))
EOF
}

main() {
    local ds
    ds=$(dataset)
    say "dataset $ds: $N_CIRCLES circles in $DIM-D, p_active $P_ACTIVE"
    echo "| config | arch | width | group size | sparsity_coef | orth_coef | threshold | steps x batch | SAE | fve | L0 (groups) | dead | rows in a plane | circles found | rows / circle | live rows / circle | groups in one plane | live groups in one plane | median within-group \|cos\| |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    local lines=() jobs=() line job sae
    while read -r line; do
        set -- $line
        [ $# -ge 11 ] && [ $# -le 12 ] && [ "${1:0:1}" != "#" ] || continue
        job=$(submit "$ds" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "${12:-}")
        say "job $job: $line"
        lines+=("$line") jobs+=("$job")
    done
    for i in "${!jobs[@]}"; do
        set -- ${lines[$i]}
        sae=$(wait_sae "${jobs[$i]}") || continue
        echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $9 x ${10} | $sae | $(figures "$sae" "$4") |"
    done
}

if [ "${2:-}" = --sae ]; then
    dataset >/dev/null
    figures "$3" "$4"
else
    main
fi
