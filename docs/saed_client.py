"""docs/saed_client.py -- the few REST calls the experiment scripts in docs/ make to a running saed.

Imported by docs/real_data_experiment.py and docs/groupspace_experiments.py (and, through the first, by
tests/test_lm_data.py); Python's standard library and NumPy only. Errors are RuntimeError with the
method, URL, status and the daemon's problem text.
"""
import io
import json
import sys
import time
import urllib.error
import urllib.request

import numpy as np


def call(url, method="GET", body=None, raw=False):
    """One request; the reply as JSON, or its bytes when raw."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            out = r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {url}: {e.code} {e.read().decode()[:500]}") from None
    return out if raw else json.loads(out)


def run_job(base, body, quiet=False):
    """Submits a job and waits for it; returns the finished job object (raises unless it succeeded).
    Unless quiet, its progress is shown on stderr."""
    job = call(base + "/v1/jobs", "POST", body)
    while job["state"] in ("queued", "running"):
        time.sleep(1)
        job = call(f"{base}/v1/jobs/{job['id']}")
        if not quiet and job["progress"]["total_steps"]:
            print(f"\r  job {job['id']} {job['type']}: {job['progress']['fraction']:.0%}", end="", file=sys.stderr)
    if not quiet:
        print(file=sys.stderr)
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['state']}: {job['error']}")
    return job


def npy(base, path):
    """GET base + path as a NumPy array (.npy)."""
    return np.load(io.BytesIO(call(base + path, raw=True)))
