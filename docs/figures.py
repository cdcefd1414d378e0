#!/usr/bin/python3
"""docs/figures.py -- the subspace figures of docs/experiments.md from bench_circles' outputs.

Usage: docs/figures.py OUTDIR RUN.txt [RUN.txt ...]

Each RUN.txt is what one `bench_circles` run printed on stdout (docs/runs/): the key=value line
(fve=, one_group=, held=, ...), then "hist_rows", "hist_groups", "hist_groups_99" and
"circle_best_cos" lines; the run is named after the file. Writes OUTDIR/groups_per_plane.png (for each
group SAE run, circles by the number of groups holding their plane at both cuts), OUTDIR/fve_capture.png
(fve against circles held by exactly one group) and, when relu runs are given, OUTDIR/rows_per_plane.png
(the fraction of circles by the number of decoder rows in their plane, the seed's feature-splitting
histogram, one colour per relu run). Needs matplotlib (Debian's python3-matplotlib); not part of make test.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_hist(text):
    """'hist_groups 0:118 1:282 10+:3' -> {0: 118, 1: 282, 10: 3}"""
    out = {}
    for kv in text.split()[1:]:
        k, v = kv.split(":")
        out[float(k.rstrip("+")) if "." in k else int(k.rstrip("+"))] = int(v)
    return out


def load(path):
    run = {"name": os.path.splitext(os.path.basename(path))[0], "kv": {}, "hist": {}, "capped": {}}
    for line in open(path):
        head = line.split(" ", 1)[0]
        if "=" in head:
            run["kv"].update(x.split("=", 1) for x in line.split() if "=" in x)
        elif head.startswith(("hist_", "circle_best_cos")):
            run["hist"][head] = parse_hist(line)
            capped = [kv.split(":")[0] for kv in line.split()[1:] if kv.split(":")[0].endswith("+")]
            if capped:  # the last bin, "K+:count", holds K or more
                run["capped"][head] = int(capped[0].rstrip("+"))
    return run


def groups_per_plane(runs, out):
    cols = min(4, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, runs):
        h, h99 = r["hist"]["hist_groups"], r["hist"].get("hist_groups_99", {})
        ks = range(0, max(list(h) + list(h99)) + 1)
        ax.bar([k - 0.2 for k in ks], [h.get(k, 0) for k in ks], width=0.4, color="#3b6fb6", label="cos >= 0.9")
        ax.bar([k + 0.2 for k in ks], [h99.get(k, 0) for k in ks], width=0.4, color="#e08a2c", label="cos >= 0.99")
        n = sum(h.values())
        kv = r["kv"]
        ax.set_title(f"{r['name']}\n{kv['arch']} {kv['width']} gs {kv['gs']}: {kv['one_group']} of {n} by one group,"
                     f" fve {float(kv['fve']):.3f}", fontsize=7)
        ax.set_xticks(list(ks))
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("circles", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("groups holding the circle's plane", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def fve_capture(runs, out):
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    markers = "os^vD<>pP*Xh"
    for i, r in enumerate(runs):
        kv = r["kv"]
        n = sum(r["hist"]["hist_groups"].values())
        x, y = int(kv["one_group"]) / n, float(kv["fve"])
        ax.scatter([x], [y], s=36, marker=markers[i % len(markers)], label=r["name"])
    ax.set_xlabel("fraction of circles held by exactly one group (cos >= 0.9)")
    ax.set_ylabel("fve")
    ax.set_xlim(0, 1.02)
    ax.axvline(0.9, color="grey", lw=0.8, ls="--")
    ax.text(0.905, ax.get_ylim()[0] + 0.01, "target 0.9", fontsize=7, color="grey")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def mean_rows(h):
    """Mean rows per circle over the circles with at least one row (the last bin counted at its floor)."""
    found = sum(v for k, v in h.items() if k > 0)
    return sum(k * v for k, v in h.items() if k > 0) / found if found else 0.0


def rows_per_plane(runs, out):
    fig, ax = plt.subplots(figsize=(8, 3.8))
    top = max(max(r["hist"]["hist_rows"]) for r in runs)
    w = 0.8 / len(runs)
    for i, r in enumerate(runs):
        h, kv = r["hist"]["hist_rows"], r["kv"]
        ks, n = range(0, top + 1), sum(h.values())
        ax.bar([k - 0.4 + w * (i + 0.5) for k in ks], [h.get(k, 0) / n for k in ks], width=w,
               label=f"{r['name']} ({n} circles, {kv['arch']} {kv['width']}, gs {kv['gs']}): fve {float(kv['fve']):.3f},"
                     f" {mean_rows(h):.2f} rows per circle found")
    ax.set_xticks(list(range(0, top + 1)))
    capped = {r["capped"].get("hist_rows") for r in runs}
    ax.set_xticklabels([f"{k}+" if k in capped else str(k) for k in range(0, top + 1)], fontsize=7)
    ax.set_xlabel("decoder rows in the circle's plane (>= 0.99 of the row's norm)")
    ax.set_ylabel("fraction of circles")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    runs = [load(p) for p in sys.argv[2:]]
    grouped = [r for r in runs if int(r["kv"]["gs"]) > 1]
    relu = [r for r in runs if r["kv"]["arch"] == "relu"]
    groups_per_plane(grouped, os.path.join(sys.argv[1], "groups_per_plane.png"))
    fve_capture(grouped, os.path.join(sys.argv[1], "fve_capture.png"))
    if relu:
        rows_per_plane(relu, os.path.join(sys.argv[1], "rows_per_plane.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
