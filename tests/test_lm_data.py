#!/usr/bin/python3
"""tests/test_lm_data.py -- the data path of the real-model example, on a fake model output (seconds).

examples/lm_activations.py turns a language model's activations into an saed dataset; the model itself
needs .venv-lm (torch, transformers) and minutes, so this test runs everything after the model: the
prompt builder, the writer (write_dataset) on a random "model output" of the right shape with a circle
planted in the month rows, the files' format as NumPy and saed read them, and the path of
docs/real_data_experiment.py through a live daemon (build/saed): import by path, a small ReLU SAE, the
pca job on the month rows by label, and circle_score on the raw PCA. Needs only NumPy (Debian's
python3-numpy), so make test always runs it. Last line "N passed, N failed".
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples"), os.path.join(ROOT, "docs")]
import lm_activations as lm  # noqa: E402
import real_data_experiment as exp  # noqa: E402

DIM = 576
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed += bool(ok)
    failed += not ok
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def fake_rows(rng):
    """Month prompts (one lead) and background rows; the months' activations hold a planted circle."""
    prompts = lm.word_prompts(["months"])[:len(lm.TEMPLATES["months"]) * 12]  # the first lead's
    labels = [w for _, w in prompts] + [lm.BACKGROUND_LABEL] * 40
    texts = [t for t, _ in prompts] + [f"background token {i}" for i in range(40)]
    acts = rng.normal(0, 0.3, (len(labels), DIM))
    a, b = np.eye(DIM)[0], np.eye(DIM)[1]
    for i, w in enumerate(labels[:len(prompts)]):
        t = 2 * np.pi * lm.MONTHS.index(w) / 12
        acts[i] += 3 * (np.cos(t) * a + np.sin(t) * b)
    return acts, labels, texts


def test_prompts():
    p = lm.word_prompts(["months", "weekdays"])
    n = len(lm.LEADS) * (len(lm.TEMPLATES["months"]) * 12 + len(lm.TEMPLATES["weekdays"]) * 7)
    check("word_prompts: one prompt per lead x template x word", len(p) == n, f"{len(p)} != {n}")
    check("word_prompts: each text ends in its label", all(t.endswith(" " + w) for t, w in p))
    try:
        lm.word_prompts(["planets"])
        check("word_prompts: an unknown set is refused", False, "no error")
    except ValueError as e:
        check("word_prompts: an unknown set is refused", "planets" in str(e), str(e))


def test_refusals():
    bad = {"NaN": (np.full((2, 3), np.nan), ["a", "b"], ["a", "b"]),
           "label with a newline": (np.zeros((2, 3)), ["a", "b\nc"], ["a", "b"]),
           "one label short": (np.zeros((2, 3)), ["a"], ["a", "b"]),
           "1-D array": (np.zeros(3), ["a"], ["a"])}
    for name, (acts, labels, texts) in bad.items():
        try:
            lm.check_rows(acts, labels, texts)
            check(f"check_rows refuses a {name}", False, "accepted")
        except ValueError:
            check(f"check_rows refuses a {name}", True)


def test_files(dirname, acts, labels):
    paths = lm.write_dataset(os.path.join(dirname, "fake-L7"), acts, labels, labels,
                             {"model_name": "fake", "model_file": "none", "layer": 7,
                              "hook_name": "blocks.7.hook_resid_pre"})
    x = np.load(paths["npy"])
    check("npy: <f4, C order, rows x 576", x.dtype == np.dtype("<f4") and x.flags.c_contiguous
          and x.shape == (len(labels), DIM), f"{x.dtype} {x.shape}")
    with open(paths["npy"], "rb") as f:
        check("npy: format version 1.0", f.read(8) == b"\x93NUMPY\x01\x00")
    lines = open(paths["labels"], encoding="utf-8").read().split("\n")
    check("labels: one line per row, newline-terminated", lines[:-1] == labels and lines[-1] == "")
    meta = json.load(open(paths["meta"]))
    check("sidecar: model, layer, counts", meta["layer"] == 7 and meta["n_rows"] == len(labels)
          and meta["label_counts"]["January"] == labels.count("January"), json.dumps(meta)[:200])
    return x


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_saed(import_dir, data_dir):
    build = os.environ.get("BUILD", "build")
    port = free_port()
    log = open(os.path.join(data_dir, "saed.log"), "w")
    proc = subprocess.Popen([os.path.join(ROOT, build, "saed"), "--listen", f"127.0.0.1:{port}", "--data-dir",
                             data_dir, "--import-dir", import_dir, "--log-level", "warn"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            exp.call(base + "/v1/health")
            return proc, base
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("saed did not start: " + open(log.name).read()[-500:])


def test_saed(base, x, labels):
    ds = exp.import_dataset(base, "fake-L7")
    check("saed imports the files by path", ds["n_rows"] == len(labels) and ds["dim"] == DIM and ds["has_labels"],
          json.dumps(ds))
    got = exp.call(f"{base}/v1/datasets/{ds['id']}/labels?offset=0&limit=3")["items"]
    check("saed reads the labels back", got == labels[:3], f"{got}")
    rows = exp.npy(base, f"/v1/datasets/{ds['id']}/rows.npy?offset=0&limit=5")
    check("saed reads the rows back bit for bit", np.array_equal(rows, x[:5]))
    job = exp.run_job(base, {"type": "train", "dataset": ds["id"], "sae": {"arch": "relu", "n_latents": 64,
                             "group_size": 1, "sparsity_coef": 0.1}, "train": {"steps": 200, "batch_size": 64,
                             "eval_rows": 32, "normalize_input": True, "lr_warmup_steps": 20,
                             "sparsity_warmup_steps": 50}}, quiet=True)
    a, pts = exp.pca_job(base, job["result"]["sae"], ds["id"], lm.MONTHS, top_latents=25, components=4)
    n_months = sum(w in lm.MONTHS for w in labels)
    check("pca job picks the month rows by label", len(a["labels"]) == n_months and pts.shape == (n_months, 4)
          and set(a["labels"]) == set(lm.MONTHS), f"{len(a['labels'])} rows, points {pts.shape}")
    check("pca job keeps 25 latents", len(a["latents"]) == 25, f"{len(a['latents'])}")


def test_circle_score(x, labels):
    words = lm.MONTHS
    t = 2 * np.pi * np.arange(12) / 12
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    s = exp.circle_score(circle, words, words)
    check("circle_score: a circle in order", abs(s["winding"]) == 1 and s["order_corr"] > 0.999
          and s["radius_cv"] < 1e-6, f"{s}")
    s = exp.circle_score(np.stack([np.cos(2 * t), np.sin(2 * t)], 1), words, words)
    check("circle_score: twice round", abs(s["winding"]) == 2 and s["order_corr"] > 0.999, f"{s}")
    s = exp.circle_score(circle[[0, 7, 2, 11, 4, 1, 9, 3, 10, 6, 5, 8]], words, words)
    check("circle_score: the right points in the wrong order", s["order_corr"] < 0.5, f"{s}")
    lab = np.array(labels)
    rows = np.isin(lab, words)
    pts, ev = exp.raw_pca(x[rows], 4)
    s = exp.circle_score(pts[:, :2], lab[rows], words)
    check("raw PCA finds the planted circle in PC1/PC2", abs(s["winding"]) == 1 and s["order_corr"] > 0.95,
          f"{s}, ev {ev}")


def main():
    rng = np.random.default_rng(0)
    acts, labels, _ = fake_rows(rng)
    test_prompts()
    test_refusals()
    with tempfile.TemporaryDirectory(prefix="saed-lm-") as tmp:
        imports, data = os.path.join(tmp, "imports"), os.path.join(tmp, "data")
        os.makedirs(imports)
        os.makedirs(data)
        x = test_files(imports, acts, labels)
        test_circle_score(x, labels)
        proc, base = start_saed(imports, data)
        try:
            test_saed(base, x, labels)
        except Exception as e:  # a failed request or job: one failure, with the reason
            check("the example's files through saed", False, str(e))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
