#!/usr/bin/python3
"""docs/groupspace_experiments.py -- the group-space experiments of docs/groupspace.md, through the API.

Usage:
  build/saed --data-dir /tmp/gs --listen 127.0.0.1:8321 &
  docs/groupspace_experiments.py toys    [--url URL] [--out docs/runs] [--fig docs/figures]
  docs/groupspace_experiments.py circles [--url URL] [--out docs/runs] [--fig docs/figures]
      [--circles 400 --dim 50 --p 0.008 --width 3200 --steps 10000]
  docs/groupspace_experiments.py redraw  [--url URL]     (the circles figure again, same daemon)
  docs/groupspace_experiments.py retrain [--url URL] [--out docs/runs] [--fig docs/figures] [--retrain-steps 5000]
  docs/groupspace_experiments.py fmnist  [--url URL] [--out docs/runs] [--width 512 --steps 4000]

toys: the seed's two toys (100 items; disjoint pairs p 0 and co-occurring pairs p 0.1), each weighting
(count = the seed's, jaccard, npmi) and seeds 0-2: true pairs within near, other pairs beyond far, the
cloud's radius profile (cv = std/mean of the distance from the centroid; inner = items within half the
mean radius), groups. Writes OUT/groupspace_toys.json and FIG/groupspace_toys.png (final positions) and
FIG/groupspace_ring.png (the ring forming over the snapshots, and the radius histograms).

circles: the loop the seed proposed, on a circles dataset: train an ordinary ReLU SAE (group size 1), analyse
it, learn a group space from its co-activations (each analysed row's firing latents is a set), and ask
whether the learned groups put the latents of one circle together, against the cosine and Jaccard
cluster baselines that `analyze` offers. A latent belongs to circle i when its unit decoder row keeps at
least 0.9 of its squared norm in circle i's plane. Scores over latents that belong to a circle: pair
precision (pairs in one group that share a circle), pair recall (pairs sharing a circle that are in one
group), circles whose latents (2 or more) all land in one group, and those where that group holds no
latent of another circle. Writes OUT/groupspace_circles.json and FIG/groupspace_circles.png.

retrain: the loop closed. The same ReLU SAE and analysis as `circles`, the best group space found there
(count weights, min_jaccard 0.1, lr 0.3, 32 negatives, 50000 steps) and the cosine and Jaccard cluster
baselines (groups of 8), then each grouping becomes the groups of a group SAE (sae.groups) retrained from
the ReLU SAE's weights (init.from_sae) for --retrain-steps steps, beside the seed's fixed pairs (group
size 2, orth 0.1) trained the same way. Each is analysed: fve, L0, and its groups scored as subspaces
against the circles' planes (circles held by exactly one group, at principal-angle cosine 0.9), and the
latent-circle scores above on its retrained decoder. Writes OUT/groupspace_retrain.json and
FIG/groupspace_retrain.png.

fmnist: the same loop on Fashion-MNIST (the training images, /usr/share/datasets/fashion-mnist), where
there is no ground truth: each grouping is scored by how much its groups' members fire together (the
mean over groups of 2+ of the members' pairwise Jaccard, from the relu SAE's analysis), and each
retrained group SAE by fve, L0 and the same Jaccard on its own analysis. Writes OUT/groupspace_fmnist.json.

Only the standard library, NumPy and matplotlib (Debian's python3-matplotlib); not part of make test.
"""
import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

import saed_client
from saed_client import call, npy


def run_job(base, body):
    return saed_client.run_job(base, body, quiet=True)


# ---------------------------------------------------------------- toys

def toys(args):
    rows = []
    for p, weight, seed in itertools.product((0.0, 0.1), ("count", "jaccard", "npmi"), (0, 1, 2)):
        body = {"type": "groupspace", "sets": {"toy": {"items": 100, "p": p}}, "steps": 5000, "weight": weight,
                "seed": seed, "snapshots": 25}
        job = run_job(args.url, body)
        r = job["result"]
        row = {"p": p, "weight": weight, "seed": seed, "job": job["id"], "true_near": r["truth"]["true_near_frac"],
               "other_far": r["truth"]["other_far_frac"], "radius_cv": r["radius"]["cv"],
               "inner": r["radius"]["inner_frac"], "n_groups": r["n_groups"], "group_sizes": r["group_sizes"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    json.dump(rows, open(os.path.join(args.out, "groupspace_toys.json"), "w"), indent=1)
    toy_figures(args, rows)


def toy_figures(args, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pick = [r for r in rows if r["seed"] == 0]
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.6))
    for ax, r in zip(axes.flat, pick):
        pos = npy(args.url, f"/v1/jobs/{r['job']}/positions.npy")
        ax.scatter(pos[:, 0], pos[:, 1], c=np.arange(100) // 2 % 10, cmap="tab10", s=12)
        ax.set_title(f"p {r['p']}, {r['weight']}: near {r['true_near']:.2f}, far {r['other_far']:.3f}\n"
                     f"radius cv {r['radius_cv']:.2f}, inner {r['inner']:.2f}, {r['n_groups']} groups", fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    fig.suptitle("final positions (colour: true pair mod 10); top: disjoint pairs, bottom: co-occurring pairs",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(args.fig, "groupspace_toys.png"), dpi=110)
    ring = next(r for r in pick if r["p"] == 0.1 and r["weight"] == "count")
    npmi = next(r for r in pick if r["p"] == 0.1 and r["weight"] == "npmi")
    job = call(f"{args.url}/v1/jobs/{ring['job']}")
    steps = job["result"]["snapshots"]
    fig, axes = plt.subplots(1, 5, figsize=(14, 3.2))
    for ax, s in zip(axes[:4], (steps[0], steps[3], steps[10], steps[-1])):
        pos = npy(args.url, f"/v1/jobs/{ring['job']}/positions.npy?step={s}")
        ax.scatter(pos[:, 0], pos[:, 1], c=np.arange(100) // 2 % 10, cmap="tab10", s=8)
        ax.set_title(f"count weights, step {s}", fontsize=8)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    for r, colour in ((ring, "#d0542c"), (npmi, "#3b6fb6")):
        h = call(f"{args.url}/v1/jobs/{r['job']}")["result"]["radius"]["hist"]
        axes[4].plot(np.linspace(0, 1, len(h), endpoint=False) + 0.5 / len(h), h, color=colour, label=r["weight"])
    axes[4].set_xlabel("distance from the centroid / max", fontsize=8)
    axes[4].set_ylabel("items", fontsize=8)
    axes[4].legend(fontsize=8)
    axes[4].set_title("radius profile, co-occurring pairs", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.fig, "groupspace_ring.png"), dpi=110)


# ---------------------------------------------------------------- circles

def latent_circles(dec, planes, cut=0.9):
    """Each latent's circle (its unit decoder row keeps >= cut of its squared norm in that plane), or -1."""
    d = dec / np.maximum(np.linalg.norm(dec, axis=1, keepdims=True), 1e-12)
    q = np.stack([np.linalg.qr(p.T)[0].T for p in planes])          # (C, 2, dim) orthonormal bases
    frac = ((d @ q.reshape(-1, q.shape[2]).T).reshape(len(d), len(q), 2) ** 2).sum(-1)   # (n, C)
    best = frac.argmax(1)
    return np.where(frac[np.arange(len(d)), best] >= cut, best, -1)


def score(groups, circle):
    """Pair precision/recall over latents with a circle, and circles held whole (and purely) by one group."""
    gid = np.full(len(circle), -1)
    for g, members in enumerate(groups):
        gid[members] = g
    lat = np.flatnonzero(circle >= 0)
    same_g = gid[lat][:, None] == gid[lat][None, :]
    same_c = circle[lat][:, None] == circle[lat][None, :]
    off = ~np.eye(len(lat), dtype=bool)
    tp = (same_g & same_c & off).sum()
    whole = pure = multi = 0
    for c in np.unique(circle[lat]):
        mem = np.flatnonzero(circle == c)
        if len(mem) < 2:
            continue
        multi += 1
        if len(set(gid[mem])) == 1:
            whole += 1
            others = circle[gid == gid[mem[0]]]
            pure += bool(np.all((others == c) | (others < 0)))
    sizes = np.bincount([len(m) for m in groups])
    return {"pair_precision": float(tp / max(1, (same_g & off).sum())),
            "pair_recall": float(tp / max(1, (same_c & off).sum())), "circles_multi": int(multi),
            "circles_whole": int(whole), "circles_whole_pure": int(pure), "n_groups": len(groups),
            "largest_group": int(len(sizes) - 1)}


# The group spaces tried on the SAE's firing rows: the job's defaults (tuned on the 100-item toys: lr 0.05,
# 8 negatives, 5000 steps), then lr 0.3, 32 negatives and 50000 steps, which 3200 latents need (see
# docs/groupspace.md), under each weighting and min_jaccard.
GROUPSPACE_RUNS = [
    {"sets": {"min_jaccard": 0.0}, "weight": "count"},
    {"sets": {"min_jaccard": 0.1}, "weight": "npmi"},
    {"sets": {"min_jaccard": 0.0}, "weight": "count", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.1}, "weight": "count", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.1}, "weight": "jaccard", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.0}, "weight": "npmi", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.05}, "weight": "npmi", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.1}, "weight": "npmi", "lr": 0.3, "negatives": 32, "steps": 50000},
    {"sets": {"min_jaccard": 0.2}, "weight": "npmi", "lr": 0.3, "negatives": 32, "steps": 50000},
]


def circles(args):
    base = args.url
    ds = call(base + "/v1/datasets", "POST", {"kind": "circles", "name": "groupspace loop", "params": {
        "n_circles": args.circles, "dim": args.dim, "p_active": args.p, "seed": 1}})
    t0 = time.time()
    train = run_job(base, {"type": "train", "dataset": ds["id"], "sae": {
        "arch": "relu", "n_latents": args.width, "group_size": 1, "sparsity_coef": 1.0}, "train": {
        "steps": args.steps, "batch_size": 1024, "lr": 0.003, "lr_warmup_steps": 1000,
        "sparsity_warmup_steps": 1000, "eval_every": 1000}})
    sae = train["result"]["sae"]
    print(f"relu SAE {sae}: {call(f'{base}/v1/saes/{sae}')['metrics']} ({time.time() - t0:.0f} s)", flush=True)
    circle = latent_circles(npy(base, f"/v1/saes/{sae}/decoder.npy"), npy(base, f"/v1/datasets/{ds['id']}/planes.npy"))
    out = {"dataset": ds["params"], "sae": sae, "width": args.width, "steps": args.steps,
           "sae_metrics": call(f"{base}/v1/saes/{sae}")["metrics"],
           "latents_with_circle": int((circle >= 0).sum()),
           "latents_per_circle": np.bincount(np.bincount(circle[circle >= 0], minlength=args.circles)).tolist(),
           "methods": {}}
    for method, size in itertools.product(("cosine", "jaccard"), (2, 8)):
        run_job(base, {"type": "analyze", "sae": sae, "n_samples": args.samples,
                       "cluster": {"method": method, "group_size": size}})
        groups = [g["members"] for g in all_groups(base, sae)]
        name = f"cluster {method}, groups of {size}"
        out["methods"][name] = score(groups, circle)
        print(name, out["methods"][name], flush=True)
    for body in GROUPSPACE_RUNS:
        body = json.loads(json.dumps(body))
        body.update(type="groupspace", snapshots=10)
        body["sets"]["from_analysis"] = sae
        job = run_job(base, body)
        groups = call(f"{base}/v1/jobs/{job['id']}/groups")["groups"]
        name = (f"groupspace {body['weight']}, min_jaccard {body['sets']['min_jaccard']}"
                + (", defaults" if "lr" not in body else f", lr {body['lr']}, negatives {body['negatives']}"))
        out["methods"][name] = dict(score(groups, circle), job=job["id"])
        print(name, out["methods"][name], flush=True)
    json.dump(out, open(os.path.join(args.out, "groupspace_circles.json"), "w"), indent=1)
    circle_figure(args, out, circle)


BEST_GROUPSPACE = {"sets": {"min_jaccard": 0.1}, "weight": "count", "lr": 0.3, "negatives": 32, "steps": 50000}


def group_jaccard(items):
    """Mean of the groups' mean pairwise member Jaccard, over groups of 2 or more, and how many there are."""
    js = [g["jaccard"] for g in items if len(g["members"]) > 1 and g["jaccard"] is not None]
    return {"mean_group_jaccard": float(np.mean(js)) if js else 0.0, "groups_2plus": len(js)}


def retrain_one(args, base, ds, relu, sae_spec, planes):
    """Retrains the ReLU SAE with sae_spec's groups from its weights; analyses it; returns its numbers
    (with planes None: no circle scores)."""
    t0 = time.time()
    job = run_job(base, {"type": "train", "dataset": ds, "sae": sae_spec, "init": {"from_sae": relu}, "train": {
        "steps": args.retrain_steps, "batch_size": 1024, "lr": 0.001, "lr_warmup_steps": 200,
        "sparsity_warmup_steps": 500, "eval_every": 1000}})
    sae = job["result"]["sae"]
    run_job(base, {"type": "analyze", "sae": sae, "n_samples": args.samples})
    items = all_groups(base, sae)
    info = call(f"{base}/v1/saes/{sae}")
    out = {"sae": sae, "seconds": round(time.time() - t0), "metrics": info["metrics"], "n_groups": info["n_groups"],
           **group_jaccard(items)}
    if planes is None:
        return out
    rec = call(f"{base}/v1/saes/{sae}/recovery")
    circle = latent_circles(npy(base, f"/v1/saes/{sae}/decoder.npy"), planes)
    # groups of one latent hold no plane: /recovery then has no subspace scores
    return dict(out, circles_one_group=rec.get("circles_one_group", 0), circles_held=rec.get("circles_held", 0),
                circles_one_group_99=rec.get("circles_one_group_99", 0),
                groups_per_plane_hist=rec.get("groups_per_plane_hist", [len(planes)]),
                latent_scores=score([g["members"] for g in items], circle))


def retrain(args):
    base = args.url
    if args.relu:  # an earlier run's dataset and ReLU SAE
        info = call(f"{base}/v1/saes/{args.relu}")
        relu, ds, args.width = args.relu, info["dataset"], info["n_latents"]
    else:
        ds = call(base + "/v1/datasets", "POST", {"kind": "circles", "name": "groupspace retrain", "params": {
            "n_circles": args.circles, "dim": args.dim, "p_active": args.p, "seed": 1}})["id"]
        relu = run_job(base, {"type": "train", "dataset": ds, "sae": {
            "arch": "relu", "n_latents": args.width, "group_size": 1, "sparsity_coef": 1.0}, "train": {
            "steps": args.steps, "batch_size": 1024, "lr": 0.003, "lr_warmup_steps": 1000,
            "sparsity_warmup_steps": 1000, "eval_every": 1000}})["result"]["sae"]
    planes = npy(base, f"/v1/datasets/{ds}/planes.npy")
    out = {"dataset": call(f"{base}/v1/datasets/{ds}")["params"], "relu": relu, "width": args.width,
           "steps": args.steps, "retrain_steps": args.retrain_steps,
           "relu_metrics": call(f"{base}/v1/saes/{relu}")["metrics"], "groupings": {}, "retrained": {}}
    circle = latent_circles(npy(base, f"/v1/saes/{relu}/decoder.npy"), planes)
    groupings = {}
    for method in ("cosine", "jaccard"):
        run_job(base, {"type": "analyze", "sae": relu, "n_samples": args.samples,
                       "cluster": {"method": method, "group_size": 8}})
        groupings[f"cluster {method}, groups of 8"] = [g["members"] for g in all_groups(base, relu)]
    run_job(base, {"type": "analyze", "sae": relu, "n_samples": args.samples})  # the plain analysis, last
    if args.gs:  # an earlier run's group space over this SAE
        gs = args.gs
    else:
        body = json.loads(json.dumps(BEST_GROUPSPACE))
        body.update(type="groupspace")
        body["sets"]["from_analysis"] = relu
        gs = run_job(base, body)["id"]
    groupings["learned (groupspace)"] = call(f"{base}/v1/jobs/{gs}/groups")["groups"]
    for name, groups in groupings.items():
        out["groupings"][name] = score(groups, circle)
        print(name, out["groupings"][name], flush=True)
    specs = {"learned (groupspace)": {"groups": {"from_job": gs}}}
    for name in ("cluster cosine, groups of 8", "cluster jaccard, groups of 8"):
        specs[name] = {"groups": groupings[name]}
    specs["fixed pairs (the seed's group SAE)"] = {"n_latents": args.width, "group_size": 2}
    specs["no groups (relu, retrained alike)"] = {"n_latents": args.width, "group_size": 1}
    # a subspace SAE on the learned groups: signed codes, orthonormal group decoders, k groups a row
    specs["learned (groupspace), subspace k 4"] = {"arch": "subspace", "k": 4, "groups": {"from_job": gs}}
    path = os.path.join(args.out, "groupspace_retrain.json")
    if args.gs and os.path.exists(path):  # the retrained SAEs an interrupted run already has
        out["retrained"] = json.load(open(path))["retrained"]
    for name, extra in specs.items():
        if name in out["retrained"]:
            continue
        spec = dict({"arch": "relu", "sparsity_coef": 1.0, "orth_coef": 0.1}, **extra)
        out["retrained"][name] = retrain_one(args, base, ds, relu, spec, planes)
        print(name, out["retrained"][name], flush=True)
        json.dump(out, open(path, "w"), indent=1)
    retrain_figure(args, out)


def fmnist(args):
    base = args.url
    ds = call(base + "/v1/datasets", "POST", {"kind": "idx", "name": "fashion-mnist train",
        "images": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
        "labels": "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"})["id"]
    relu = run_job(base, {"type": "train", "dataset": ds, "sae": {
        "arch": "relu", "n_latents": args.width, "group_size": 1, "sparsity_coef": args.coef}, "train": {
        "steps": args.steps, "batch_size": 512, "lr": 0.001, "lr_warmup_steps": 500,
        "sparsity_warmup_steps": 1000, "eval_every": 1000, "normalize_input": True}})["result"]["sae"]
    out = {"dataset": "fashion-mnist train (60000 x 784)", "relu": relu, "width": args.width, "steps": args.steps,
           "retrain_steps": args.retrain_steps, "relu_metrics": call(f"{base}/v1/saes/{relu}")["metrics"],
           "groupings": {}, "retrained": {}}
    groupings = {}
    for method in ("cosine", "jaccard"):
        run_job(base, {"type": "analyze", "sae": relu, "n_samples": args.samples,
                       "cluster": {"method": method, "group_size": 8}})
        groupings[f"cluster {method}, groups of 8"] = all_groups(base, relu)
    run_job(base, {"type": "analyze", "sae": relu, "n_samples": args.samples})
    body = json.loads(json.dumps(BEST_GROUPSPACE))
    body.update(type="groupspace", steps=args.gs_steps)
    body["sets"]["from_analysis"] = relu
    gs = run_job(base, body)["id"]
    learned = call(f"{base}/v1/jobs/{gs}/groups")["groups"]
    for name, items in groupings.items():
        out["groupings"][name] = dict(group_jaccard(items), largest=max(len(g["members"]) for g in items))
    sizes = np.bincount([len(g) for g in learned])
    out["groupings"]["learned (groupspace)"] = {"n_groups": len(learned), "largest": int(len(sizes) - 1),
                                                "sizes": sizes.tolist()}
    print(json.dumps(out["groupings"]), flush=True)
    specs = {"learned (groupspace)": {"groups": {"from_job": gs}},
             "cluster jaccard, groups of 8": {"groups": [g["members"] for g in groupings["cluster jaccard, groups of 8"]]},
             "cluster cosine, groups of 8": {"groups": [g["members"] for g in groupings["cluster cosine, groups of 8"]]},
             "fixed pairs (the seed's group SAE)": {"n_latents": args.width, "group_size": 2},
             "no groups (relu, retrained alike)": {"n_latents": args.width, "group_size": 1}}
    for name, extra in specs.items():
        spec = dict({"arch": "relu", "sparsity_coef": args.coef, "orth_coef": 0.1}, **extra)
        out["retrained"][name] = retrain_one(args, base, ds, relu, spec, None)
        print(name, out["retrained"][name], flush=True)
        json.dump(out, open(os.path.join(args.out, "groupspace_fmnist.json"), "w"), indent=1)


def retrain_figure(args, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(out["retrained"])
    r = [out["retrained"][n] for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, [v["circles_one_group"] for v in r], 0.4, label="circles held by exactly one group (cos 0.9)",
                color="#4a9a4a")
    axes[0].bar(x + 0.2, [v["circles_held"] for v in r], 0.4, label="circles held by any group", color="#3b6fb6")
    axes[0].set_xticks(x)
    axes[0].set_xticklabels(names, rotation=20, ha="right", fontsize=7)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"{out['dataset']['n_circles']} circles: group SAEs retrained from the ReLU SAE", fontsize=9)
    for v, n, mk in zip(r, names, "osD^vP"):
        axes[1].scatter(v["metrics"]["l0"], v["metrics"]["fve"], s=40, marker=mk, label=n, alpha=0.8)
    m = out["relu_metrics"]
    axes[1].scatter(m["l0"], m["fve"], marker="x", c="k", s=50, label="the ReLU SAE they start from")
    axes[1].legend(fontsize=7)
    axes[1].set_xlabel("L0 (latents per row)")
    axes[1].set_ylabel("fraction of variance explained")
    fig.tight_layout()
    fig.savefig(os.path.join(args.fig, "groupspace_retrain.png"), dpi=110)


def all_groups(base, sae):
    items, after = [], None
    while True:
        page = call(f"{base}/v1/saes/{sae}/groups?limit=1000" + (f"&after={after}" if after is not None else ""))
        items += page["items"]
        after = page.get("next")
        if after is None:
            return items


def circle_figure(args, out, circle):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(out["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    x = np.arange(len(names))
    m = [out["methods"][n] for n in names]
    n_circ = out["dataset"]["n_circles"]
    axes[0].bar(x - 0.27, [v["pair_precision"] for v in m], 0.27, label="pair precision", color="#3b6fb6")
    axes[0].bar(x, [v["pair_recall"] for v in m], 0.27, label="pair recall", color="#e08a2c")
    axes[0].bar(x + 0.27, [v["circles_whole_pure"] / n_circ for v in m], 0.27, color="#4a9a4a",
                label="circles whole in one group of their own (fraction)")
    axes[0].set_xticks(x)
    axes[0].set_xticklabels(names, rotation=25, ha="right", fontsize=7)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"latents of one circle in one group ({out['latents_with_circle']} latents with a circle)",
                      fontsize=9)
    best = max((n for n in names if n.startswith("groupspace")),
               key=lambda n: out["methods"][n]["circles_whole_pure"])
    pos = npy(args.url, f"/v1/jobs/{out['methods'][best]['job']}/positions.npy")
    has = circle >= 0
    axes[1].scatter(pos[~has, 0], pos[~has, 1], s=2, c="#bbbbbb")
    axes[1].scatter(pos[has, 0], pos[has, 1], s=4, c=circle[has] % 20, cmap="tab20")
    axes[1].set_aspect("equal")
    axes[1].set_title(f"{best}:\npositions, coloured by circle (grey: none)", fontsize=8)
    axes[1].tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.fig, "groupspace_circles.png"), dpi=110)


def redraw(args):
    """The circles figure again from OUT/groupspace_circles.json and the daemon that ran it."""
    out = json.load(open(os.path.join(args.out, "groupspace_circles.json")))
    ds = next(d for d in call(args.url + "/v1/datasets?limit=1000")["items"] if d["params"] == out["dataset"])
    circle = latent_circles(npy(args.url, f"/v1/saes/{out['sae']}/decoder.npy"),
                            npy(args.url, f"/v1/datasets/{ds['id']}/planes.npy"))
    circle_figure(args, out, circle)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("toys", "circles", "redraw", "retrain", "fmnist"))
    ap.add_argument("--url", default="http://127.0.0.1:8321")
    ap.add_argument("--out", default="docs/runs")
    ap.add_argument("--fig", default="docs/figures")
    ap.add_argument("--circles", type=int, default=400)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--p", type=float, default=0.008)
    ap.add_argument("--width", type=int, default=3200)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=200000)
    ap.add_argument("--retrain-steps", type=int, default=5000)
    ap.add_argument("--gs-steps", type=int, default=50000)
    ap.add_argument("--coef", type=float, default=1.0)
    ap.add_argument("--relu", type=int, default=0, help="retrain: reuse this ReLU SAE (and its dataset)")
    ap.add_argument("--gs", type=int, default=0, help="retrain: reuse this groupspace job, and the retrained "
                    "SAEs already in OUT/groupspace_retrain.json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.fig, exist_ok=True)
    try:
        {"toys": toys, "circles": circles, "redraw": redraw, "retrain": retrain, "fmnist": fmnist}[args.what](args)
    except RuntimeError as e:  # a refused request or a failed job (saed_client): its message, no traceback
        sys.exit(str(e))


if __name__ == "__main__":
    main()
