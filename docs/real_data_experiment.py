#!/usr/bin/env python3
"""docs/real_data_experiment.py -- the seed's months experiment on a real language model, through saed's API.

Usage (docs/real-data.md has the whole recipe):
  .venv-lm/bin/python examples/lm_activations.py --layer 7 --out /tmp/lm/smollm2-L7
  build/saed --data-dir /tmp/lm-saed --import-dir /tmp/lm --listen 127.0.0.1:8321 &
  .venv-lm/bin/python docs/real_data_experiment.py --url http://127.0.0.1:8321 --import-dir /tmp/lm \\
      --name smollm2-L7 [--latents 2048 --steps 1500 --l1 2 --k 16] [--out docs/runs] [--fig docs/figures]
  .venv-lm/bin/python docs/real_data_experiment.py ... --name smollm2-L7 --rescore   (score and draw again)

Imports IMPORT_DIR/NAME.npy with its labels, trains a ReLU SAE (group size 1) and a subspace SAE (groups
of 2, the k strongest kept, started from the ReLU SAE's decoder), analyses both, and runs saed's pca job
(the top 25 latents on the chosen rows, rows reconstructed from those alone, PCA of the reconstructions)
on the month rows and on the weekday rows. The same rows' raw activations get their own PCA (NumPy) for
comparison. For each PCA and each pair of its first components, the words' mean points are scored as a
circle (circle_score), against chance: the 95th percentile of the best pair's score with the words' order
shuffled (null_order_corr). Writes OUT/real_data_NAME.json and FIG/real_data_NAME_{months,weekdays}.png.

Only the standard library and NumPy, plus matplotlib for the figures (in .venv-lm, or Debian's).
"""
import argparse
import itertools
import json
import os

import numpy as np

from saed_client import call, npy, run_job  # noqa: F401 (tests/test_lm_data.py uses them as exp.*)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WORD_SETS = {"months": MONTHS, "weekdays": WEEKDAYS}


# ---------------------------------------------------------------- the API (calls, jobs, .npy: saed_client)

def import_dataset(base, name):
    return call(base + "/v1/datasets", "POST", {"kind": "npy", "name": name, "path": name + ".npy",
                                                 "labels": name + ".labels.txt"})


def pca_job(base, sae, dataset, words, top_latents=25, components=6):
    """saed's pca job on the rows labelled with one of the words: (analysis object, points (rows, comps))."""
    job = run_job(base, {"type": "pca", "sae": sae, "dataset": dataset, "rows": {"labels": words},
                         "top_latents": top_latents, "components": components}, quiet=True)
    aid = job["result"]["analysis"]
    return call(f"{base}/v1/analyses/{aid}"), npy(base, f"/v1/analyses/{aid}/points.npy")


# ---------------------------------------------------------------- circles

def circle_score(points, labels, words):
    """How well the mean points of the words, in order, lie on a circle in a 2-D projection.

    points (rows, 2), labels (rows): one label per row. Around the centroid of the words' means:
    winding = the summed turn from each word to the next (the last back to the first), in turns (a circle
    in order gives +-1, a circle traversed twice in order +-2, no order ~0); order_corr = |mean of
    exp(i(theta_w - s*f*2*pi*w/n))| for f = |winding| (1 when |winding| < 1) and the better direction s,
    1 for words evenly spaced in order; radius_cv = std/mean of their distances from the centroid
    (0 on a circle).
    """
    labels = np.asarray(labels)
    means = np.array([points[labels == w].mean(0) for w in words])
    c = means - means.mean(0)
    theta = np.arctan2(c[:, 1], c[:, 0])
    radius = np.hypot(c[:, 0], c[:, 1])
    steps = np.angle(np.exp(1j * (np.roll(theta, -1) - theta)))
    winding = int(round(steps.sum() / (2 * np.pi)))
    f = max(1, abs(winding))
    phase = 2 * np.pi * np.arange(len(words)) / len(words)
    corr = max(abs(np.mean(np.exp(1j * (theta - s * f * phase)))) for s in (1, -1))
    return {"winding": winding, "order_corr": round(float(corr), 3),
            "radius_cv": round(float(radius.std() / radius.mean()), 3)}


def pair_scores(points, labels, words):
    """circle_score for every pair of the first components: {"PC1/PC2": {...}, ...}."""
    k = points.shape[1]
    return {f"PC{a + 1}/PC{b + 1}": circle_score(points[:, [a, b]], labels, words)
            for a, b in itertools.combinations(range(k), 2)}


def raw_pca(x, components):
    """PCA of the rows x: (points (rows, components), explained variance ratio of each)."""
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:components].T, (s[:components] ** 2 / (s ** 2).sum())


def summary(ev, scores):
    """The explained variance ratios, the pairs that wind in order (|winding| >= 1, order_corr >= 0.9) and
    the best pair (highest order_corr)."""
    good = {p: s for p, s in scores.items() if abs(s["winding"]) >= 1 and s["order_corr"] >= 0.9}
    best = max(scores, key=lambda p: scores[p]["order_corr"])
    return {"explained_variance_ratio": [round(float(v), 4) for v in ev], "pairs": scores, "circles": good,
            "best": best}


def best_pair(name):
    """"PC2/PC3" -> (1, 2)"""
    a, b = name.split("/")
    return int(a[2:]) - 1, int(b[2:]) - 1


# ---------------------------------------------------------------- the experiment

def train_saes(args, base, dataset, n_rows):
    train = {"steps": args.steps, "batch_size": 512, "normalize_input": True, "eval_rows": 1024,
             "lr_warmup_steps": 200, "sparsity_warmup_steps": args.steps // 3}
    relu = run_job(base, {"type": "train", "dataset": dataset, "sae": {"arch": "relu", "n_latents": args.latents,
                          "group_size": 1, "sparsity_coef": args.l1}, "train": train})
    relu_id = relu["result"]["sae"]
    sub = run_job(base, {"type": "train", "dataset": dataset, "sae": {"arch": "subspace", "n_latents": args.latents,
                         "group_size": 2, "k": args.k}, "train": dict(train, resample_every=args.steps // 4),
                         "init": {"from_sae": relu_id}})
    saes = {"relu": relu_id, "subspace": sub["result"]["sae"]}
    for sid in saes.values():
        run_job(base, {"type": "analyze", "sae": sid, "dataset": dataset, "n_samples": n_rows})
    return {name: call(f"{base}/v1/saes/{sid}") for name, sid in saes.items()}


def load_rows(args):
    x = np.load(os.path.join(args.import_dir, args.name + ".npy"))
    labels = np.array(open(os.path.join(args.import_dir, args.name + ".labels.txt"), encoding="utf-8")
                      .read().split("\n")[:-1])
    return x, labels


def experiment(args):
    """Import, train, analyse, and one pca job per SAE and word set; returns the run's record."""
    base = args.url.rstrip("/")
    meta = json.load(open(os.path.join(args.import_dir, args.name + ".json")))
    ds = import_dataset(base, args.name)
    saes = train_saes(args, base, ds["id"], ds["n_rows"])
    out = {"dataset": ds, "source": {k: meta[k] for k in ("model_name", "model_file", "layer", "hook_name")},
           "saes": {n: {"id": s["id"], "config": s["config"], "metrics": s["metrics"]} for n, s in saes.items()},
           "settings": {k: getattr(args, k) for k in ("latents", "steps", "l1", "k", "components")}, "sets": {}}
    for set_name, words in WORD_SETS.items():
        out["sets"][set_name] = {name: {"analysis": pca_job(base, s["id"], ds["id"], words, 25,
                                                            args.components)[0]["id"]}
                                 for name, s in saes.items()}
    return out


def null_order_corr(points, labels, words, n=200, seed=0):
    """The 95th percentile of the best pair's order_corr when the words' order is shuffled: what chance gives."""
    rng = np.random.default_rng(seed)
    best = [max(s["order_corr"] for s in pair_scores(points, labels, list(rng.permutation(words))).values())
            for _ in range(n)]
    return round(float(np.percentile(best, 95)), 3)


def score_raw(x, labels, words, components):
    rows = np.isin(labels, words)
    pts, ev = raw_pca(x[rows], components)
    res = summary(ev, pair_scores(pts, labels[rows], words))
    res["null_order_corr_p95"] = null_order_corr(pts, labels[rows], words)
    return res, (pts, labels[rows], ev, res)


def score(args, out):
    """Scores the raw PCA and each SAE's pca analysis (fetched from the daemon) of each word set; fills
    out["sets"] and returns the figures' panels."""
    base = args.url.rstrip("/")
    x, labels = load_rows(args)
    figs = {}
    for set_name, words in WORD_SETS.items():
        raw, panel = score_raw(x, labels, words, args.components)
        res = {"rows": int(np.isin(labels, words).sum()), "raw": raw}
        panels = {"raw activations": panel}
        for name in out["saes"]:
            aid = out["sets"][set_name][name]["analysis"]
            a, p = call(f"{base}/v1/analyses/{aid}"), npy(base, f"/v1/analyses/{aid}/points.npy")
            res[name] = dict(summary(a["explained_variance_ratio"], pair_scores(p, a["labels"], words)), analysis=aid,
                             latents=a["latents"], null_order_corr_p95=null_order_corr(p, np.array(a["labels"]), words))
            panels[f"{name} SAE, top 25 latents"] = (p, np.array(a["labels"]), a["explained_variance_ratio"], res[name])
        out["sets"][set_name] = res
        figs[set_name] = panels
        print(json.dumps({set_name: {k: {"circles": v["circles"], "null_p95": v["null_order_corr_p95"]}
                                     for k, v in res.items() if isinstance(v, dict)}}), flush=True)
    return figs


# ---------------------------------------------------------------- figures

def scatter_pair(ax, pts, labels, words, colors, a, b, ev):
    for w, col in zip(words, colors):
        sel = labels == w
        ax.scatter(pts[sel, a], pts[sel, b], s=4, color=col, alpha=0.25, linewidths=0)
        m = pts[sel][:, [a, b]].mean(0)
        ax.scatter(*m, s=40, color=col, edgecolors="k", linewidths=0.6, zorder=3)
        ax.annotate(w[:3], m, fontsize=8, xytext=(3, 3), textcoords="offset points", zorder=4)
    ax.set_xlabel(f"PC{a + 1} ({ev[a]:.1%})")
    ax.set_ylabel(f"PC{b + 1} ({ev[b]:.1%})")


def figure(path, title, panels, words):
    """One row per PCA (raw, each SAE); columns PC1/PC2, PC3/PC4 and the pair scored best as a circle."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = plt.get_cmap("hsv")(np.arange(len(words)) / len(words))
    fig, axes = plt.subplots(len(panels), 3, figsize=(12.6, 3.8 * len(panels)), squeeze=False)
    for row, (name, (pts, labels, ev, res)) in zip(axes, panels.items()):
        for ax, pair in zip(row, ("PC1/PC2", "PC3/PC4", res["best"])):
            scatter_pair(ax, pts, labels, words, colors, *best_pair(pair), ev)
            s = res["pairs"][pair]
            best = "best: " if ax is row[2] else ""
            ax.set_title(f"{name}: {best}winding {s['winding']}, order_corr {s['order_corr']:.2f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8321")
    ap.add_argument("--import-dir", required=True, help="the daemon's --import-dir, where NAME.npy lies")
    ap.add_argument("--name", required=True, help="files NAME.npy, NAME.labels.txt, NAME.json (lm_activations.py)")
    ap.add_argument("--latents", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--l1", type=float, default=2.0, help="the ReLU SAE's sparsity_coef")
    ap.add_argument("--k", type=int, default=16, help="the subspace SAE's groups kept per row")
    ap.add_argument("--components", type=int, default=6)
    ap.add_argument("--rescore", action="store_true", help="no training: score and draw again the analyses of "
                    "OUT/real_data_NAME.json, from the same daemon")
    ap.add_argument("--out", default="docs/runs")
    ap.add_argument("--fig", default="docs/figures")
    ap.add_argument("--raw-only", action="store_true", help="no daemon: print the raw activations' scores")
    args = ap.parse_args()
    if args.raw_only:
        x, labels = load_rows(args)
        for set_name, words in WORD_SETS.items():
            r = score_raw(x, labels, words, args.components)[0]
            print(json.dumps({"name": args.name, "set": set_name, "best": r["best"], **r["pairs"][r["best"]],
                              "null_p95": r["null_order_corr_p95"], "circles": r["circles"],
                              "explained_variance_ratio": r["explained_variance_ratio"]}))
        return
    path = os.path.join(args.out, f"real_data_{args.name}.json")
    out = json.load(open(path)) if args.rescore else experiment(args)
    figs = score(args, out)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    for set_name, panels in figs.items():
        title = f"{out['source']['model_name']} layer {out['source']['layer']}: {set_name}, PCA of the {set_name} rows"
        figure(os.path.join(args.fig, f"real_data_{args.name}_{set_name}.png"), title, panels, WORD_SETS[set_name])


if __name__ == "__main__":
    main()
