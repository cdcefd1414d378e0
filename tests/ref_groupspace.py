#!/usr/bin/python3
"""ref_groupspace -- an independent PyTorch (float64, autograd) reference for the group space's loss
(core/groupspace.c, include/groupspace.h).

Usage: ref_groupspace.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_groupspace.c) holds config.txt (near, far, repel, weight,
min_jaccard), corpus.txt (one set of item ids per line: the statistics), the positions pos (N, D),
the set's items set (n), each member's negatives neg (n, m), and the C results: loss () and grad_pos
(N, D) (the gradients of members and negatives, summed per item), all as float32 .npy.

Recomputed here from the definitions:
  counts n_i and c_ij over the corpus's M sets;
  jaccard J_ij = c_ij / (n_i + n_j - c_ij); npmi = log(c_ij M / (n_i n_j)) / -log(c_ij / M) clipped to
  [0, 1] (1 when c_ij = M, 0 when c_ij = 0); count weighs every pair 1;
  L = sum_{i<j in S, J_ij >= min_jaccard} w_ij relu(|x_i - x_j| - near)
    + repel * sum_{a in S} sum_{k in neg[a]} relu(far - |x_a - x_k|).
"""
import itertools
import math
import os

from ref_common import compare_all, load, load64, main, read_config, torch, verdict


def read_corpus(case):
    with open(os.path.join(case, "corpus.txt")) as f:
        return [set(int(t) for t in line.split()) for line in f if line.strip()]


def weights(corpus, kind):
    """w(i, j) and J(i, j) from the corpus's counts."""
    m = len(corpus)
    count = {}
    pair = {}
    for s in corpus:
        for i in s:
            count[i] = count.get(i, 0) + 1
        for i, j in itertools.combinations(sorted(s), 2):
            pair[(i, j)] = pair.get((i, j), 0) + 1

    def jac(i, j):
        c = pair.get((min(i, j), max(i, j)), 0)
        u = count.get(i, 0) + count.get(j, 0) - c
        return c / u if u else 0.0

    def w(i, j):
        if kind == "count":
            return 1.0
        if kind == "jaccard":
            return jac(i, j)
        c = pair.get((min(i, j), max(i, j)), 0)
        if c == 0:
            return 0.0
        if c >= m:
            return 1.0
        npmi = math.log(c * m / (count[i] * count[j])) / -math.log(c / m)
        return min(max(npmi, 0.0), 1.0)

    return w, jac


def check_case(case):
    cfg = read_config(case, text_keys=("weight",))
    pos = load64(case, "pos", grad=True)
    members = [int(v) for v in load(case, "set")]
    neg = load(case, "neg").astype(int)
    w, jac = weights(read_corpus(case), cfg["weight"])
    loss = torch.zeros((), dtype=torch.float64)
    for i, j in itertools.combinations(members, 2):
        if cfg["min_jaccard"] > 0 and jac(i, j) < cfg["min_jaccard"]:
            continue
        loss = loss + w(i, j) * torch.relu(torch.linalg.norm(pos[i] - pos[j]) - cfg["near"])
    for a, i in enumerate(members):
        for k in neg[a] if neg.ndim == 2 else []:
            loss = loss + cfg["repel"] * torch.relu(cfg["far"] - torch.linalg.norm(pos[i] - pos[int(k)]))
    loss.backward()
    return verdict(case, compare_all(case, {"loss": loss.detach(), "grad_pos": pos.grad}))


if __name__ == "__main__":
    raise SystemExit(main(__doc__, check_case))
