"""saelens_roundtrip — saed against the real SAELens package, both ways (issue 16).

Run by tests/saelens.sh with the .venv-saelens interpreter (sae-lens and torch pinned in
requirements-saelens.txt) against a live saed at argv[1]:

  saed -> SAELens: for every architecture with an exact SAELens equivalent (relu without and with a
  threshold, jumprelu, batchtopk, topk, gated; group_size 1, some with normalize_input so that the folded
  input scale is exercised), train a tiny SAE through the API, download GET /v1/saes/{id}/saelens.tar,
  load it with sae_lens.SAE.load_from_disk, and encode/decode the same raw rows in SAELens and with
  POST /v1/saes/{id}/encode. An analysed SAE's sparsity.safetensors must match its latents' densities.
  A group SAE must be refused with 422.

  SAELens -> saed: build an SAE of each SAELens architecture (standard, also with
  apply_b_dec_to_input false; jumprelu; topk, also with rescale_acts_by_decoder_norm; gated) with random
  weights, save_model, tar the folder, POST it to /v1/saes, and compare the same way; then run an
  analyze job on an imported SAE.

Latents are compared dense (saed's [index, value] lists scattered into zeros), reconstructions as they
are. Tolerance TOL (absolute) on both: float32 sums in another order, and saed writes 10 significant
digits. Prints one line per case with the max abs differences, and "N passed, N failed" last.
"""
import io
import json
import math
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import torch
from safetensors.torch import load_file

from sae_lens import SAE, GatedSAE, GatedSAEConfig, JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig
from sae_lens import TopKSAE, TopKSAEConfig

TOL = 1e-4
BASE = sys.argv[1]
DIM, N_LAT, ROWS = 8, 16, 48
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}", flush=True)


def http(method, path, body=None, ctype="application/json"):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def jpost(path, body):
    st, raw, _ = http("POST", path, body)
    assert st in (200, 201, 202), f"POST {path}: {st} {raw[:300]!r}"
    return json.loads(raw)


def wait_job(job):
    for _ in range(1200):
        st, raw, _ = http("GET", f"/v1/jobs/{job}")
        j = json.loads(raw)
        if j["state"] in ("succeeded", "failed", "cancelled"):
            assert j["state"] == "succeeded", f"job {job}: {j.get('error')}"
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish")


def saed_encode(sae_id, x):
    out = jpost(f"/v1/saes/{sae_id}/encode", {"rows": x.tolist()})
    z = np.zeros((len(x), N_LAT), np.float64)
    for b, row in enumerate(out["latents"]):
        for i, v in row:
            z[b, int(i)] = v
    return z, np.array(out["reconstruction"], np.float64)


def compare(name, sae_id, sae, x):
    """Encodes x in SAELens and saed; returns (max |dz|, max |dx_hat|)."""
    with torch.no_grad():
        xt = torch.tensor(x, dtype=torch.float32)
        z_l = sae.encode(xt)
        xh_l = sae.decode(z_l).double().numpy()
        z_l = z_l.double().numpy()
    z_s, xh_s = saed_encode(sae_id, x)
    dz, dx = float(np.abs(z_l - z_s).max()), float(np.abs(xh_l - xh_s).max())
    fired = int((z_s != 0).sum())
    print(f"{name:34s} sae {sae_id:3d}: max |dz| {dz:.3g}, max |dx_hat| {dx:.3g} ({fired} of {z_s.size} latents fire)",
          flush=True)
    check(dz <= TOL and dx <= TOL, f"{name}: differences {dz:.3g}, {dx:.3g} over {TOL}")
    check(0 < fired < z_s.size, f"{name}: a degenerate code ({fired} firing) proves little")
    return dz, dx


def untar(raw, d):
    """Writes the archive's files into d by base name (no paths from the archive are trusted)."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t.getmembers():
            if m.isfile():
                with open(f"{d}/{m.name.rsplit('/', 1)[-1]}", "wb") as f:
                    f.write(t.extractfile(m).read())


def export_case(name, ds, sae_spec, x, normalize, analyse=False):
    job = jpost("/v1/jobs", {"type": "train", "dataset": ds, "sae": sae_spec,
                             "train": {"steps": 300, "batch_size": 64, "eval_every": 300, "eval_rows": 128,
                                       "normalize_input": normalize}})["id"]
    sae_id = wait_job(job)["result"]["sae"]
    if analyse:
        wait_job(jpost("/v1/jobs", {"type": "analyze", "sae": sae_id, "n_samples": 2000})["id"])
    st, raw, ctype = http("GET", f"/v1/saes/{sae_id}/saelens.tar")
    check(st == 200 and ctype.startswith("application/x-tar"), f"{name}: saelens.tar {st} {ctype}")
    with tempfile.TemporaryDirectory() as d:
        untar(raw, d)
        sae = SAE.load_from_disk(d)
        cfg = json.load(open(d + "/cfg.json"))
        check(cfg["metadata"]["saed"]["sae"] == sae_id, f"{name}: metadata.saed")
        if analyse:
            sp = load_file(d + "/sparsity.safetensors")["sparsity"].double().numpy()
            st, raw, _ = http("GET", f"/v1/saes/{sae_id}/latents?limit=1000")
            dens = np.zeros(N_LAT)
            for item in json.loads(raw)["items"]:
                dens[item["latent"]] = item["density"]
            check(np.abs(sp - np.log10(dens + 1e-10)).max() < 1e-5, f"{name}: sparsity.safetensors")
    print(f"  {name}: SAELens {type(sae).__name__}", flush=True)
    return compare(name, sae_id, sae, x)


def import_case(name, sae, x, ds):
    with tempfile.TemporaryDirectory() as d:
        sae.save_model(d)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for f in ("cfg.json", "sae_weights.safetensors"):
                t.add(f"{d}/{f}", arcname=f"{name}/{f}")
        st, raw, _ = http("POST", f"/v1/saes?dataset={ds}", buf.getvalue(), "application/x-tar")
    check(st == 201, f"{name}: import answered {st}: {raw[:300]!r}")
    obj = json.loads(raw)
    check(obj["job"] is None and obj["dataset"] == ds, f"{name}: job null, dataset {ds}")
    return obj["id"], compare(name, obj["id"], sae, x)


def random_sae(kind):
    g = torch.Generator().manual_seed(sum(map(ord, kind)))
    common = dict(d_in=DIM, d_sae=N_LAT)
    if kind.startswith("standard"):
        sae = StandardSAE(StandardSAEConfig(**common, apply_b_dec_to_input=kind == "standard"))
    elif kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(**common))
    elif kind.startswith("topk"):
        sae = TopKSAE(TopKSAEConfig(**common, k=3, rescale_acts_by_decoder_norm=kind != "topk"))
    else:
        sae = GatedSAE(GatedSAEConfig(**common))
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim == 2 else 0.2))
        if kind == "jumprelu":
            sae.threshold.copy_(torch.rand(N_LAT, generator=g) * 0.5)
    return sae


def main():
    ds = jpost("/v1/datasets", {"kind": "circles", "name": "saelens",
                                "params": {"n_circles": 8, "dim": DIM, "p_active": 0.25, "seed": 3}})["id"]
    st, raw, _ = http("GET", f"/v1/datasets/{ds}/rows.npy?offset=5000&limit={ROWS}")
    x = np.load(io.BytesIO(raw)).astype(np.float32) * 3.0  # raw rows, at another scale than training's
    worst = {}
    base = {"n_latents": N_LAT, "group_size": 1}
    cases = [("relu -> standard", {"arch": "relu", **base}, True, True),
             ("relu+threshold -> jumprelu", {"arch": "relu", "threshold": 0.05, **base}, False, False),
             ("jumprelu -> jumprelu", {"arch": "jumprelu", "threshold": 0.02, **base}, True, False),
             ("batchtopk -> jumprelu", {"arch": "batchtopk", "k": 3, **base}, False, False),
             ("topk -> topk", {"arch": "topk", "k": 3, **base}, True, False),
             ("gated -> gated", {"arch": "gated", **base}, False, False)]
    for name, spec, normalize, analyse in cases:
        worst["export " + name] = export_case(name, ds, spec, x, normalize, analyse)
    job = jpost("/v1/jobs", {"type": "train", "dataset": ds, "sae": {"arch": "relu", "n_latents": N_LAT,
                             "group_size": 2}, "train": {"steps": 50, "batch_size": 64}})["id"]
    gid = wait_job(job)["result"]["sae"]
    st, raw, ctype = http("GET", f"/v1/saes/{gid}/saelens.tar")
    check(st == 422 and b"group" in raw and "problem+json" in ctype, f"group SAE refused: {st} {raw[:200]!r}")
    imported = None
    for kind in ("standard", "standard-no-bdec", "jumprelu", "topk", "topk-rescaled", "gated"):
        imported, worst["import " + kind] = import_case(kind, random_sae(kind), x, ds)
    wait_job(jpost("/v1/jobs", {"type": "analyze", "sae": imported, "n_samples": 1000})["id"])
    st, raw, _ = http("GET", f"/v1/saes/{imported}/analysis")
    check(st == 200, f"analyze on an imported SAE: {st}")
    dz = max(v[0] for v in worst.values())
    dx = max(v[1] for v in worst.values())
    print(f"overall max |dz| {dz:.3g}, max |dx_hat| {dx:.3g} (tolerance {TOL})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a broken step is one failure, with its reason
        import traceback
        traceback.print_exc()
        print(f"{passed} passed, {failed + 1} failed")
        sys.exit(1)
