#!/usr/bin/python3
"""tests/test_robust.py -- the robustness suite of issue 15, against a real daemon (about a minute).

1. A hostile client: every route of openapi.json x malformed inputs (bad JSON, wrong types, huge and
   negative numbers, bad UTF-8 bytes in path, query and body, %00 in paths, unknown query parameters,
   wrong methods, oversized bodies). Asserts: never a 5xx, every error is application/problem+json,
   nothing is created or changed (datasets, jobs, SAEs counted before and after), and GET /v1/health
   answers within 100 ms between batches. Then 300 slowloris sockets and 300 idle event streams, from
   several loopback addresses at once, while health still answers within 100 ms.
2. A kill -9 loop on one data directory: uploads, imports by path, training and analysis, each killed
   at a random moment and the daemon restarted; at the end SQLite's integrity_check is ok, no staging
   folder is left, every job came back and succeeded, no succeeded job lost its result.
3. A table of the counts, then "N passed, N failed" (tests/run.sh).

Standard library only; raw sockets, so bad bytes reach the daemon as sent.
"""
import glob
import json
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
SAED = os.path.join(ROOT, BUILD, "saed")
HEALTH_MS = 100.0
MAX_CONNECTIONS = 1024  # room for 300 slowloris + 300 streams under 7/8 (README "## The daemon")

passed = failed = 0
stats = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0, "not problem+json": 0, "crashes": 0, "kills": 0,
         "orphans": 0, "results lost": 0, "health worst ms": 0.0, "health samples": 0}


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")
    return ok


# ---------------------------------------------------------------- a raw HTTP client

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def raw_request(port, method, target, body=None, ctype=None, src="127.0.0.1", timeout=20, extra=b""):
    """Sends one request (target and body are bytes or str, sent as they are) and reads the whole reply."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + \
        b"\r\nConnection: close\r\n" + extra
    if body is not None:
        head += b"Content-Type: " + (ctype or "application/json").encode() + b"\r\n"
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(head + b"\r\n" + (body or b""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered (e.g. 413) and closed before the whole body went: read its answer
        data = recv_all(s)
    finally:
        s.close()
    return parse_reply(data)


def recv_all(s):
    """Everything the daemon sends until it closes (a reset after its answer ends it too)."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse_reply(data):
    """An HTTP reply (status, lower-cased headers, body with any chunked coding undone); status 0 if none."""
    hdr, _, rest = data.partition(b"\r\n\r\n")
    lines = hdr.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return Resp(0, {}, data)
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, buf = b"", rest
        while buf:
            size_s, _, buf = buf.partition(b"\r\n")
            try:
                size = int(size_s.split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            out, buf = out + buf[:size], buf[size + 2:]
        rest = out
    return Resp(status, headers, rest)


class Daemon:
    def __init__(self, data_dir, import_dir, extra=()):
        self.data_dir, self.import_dir, self.extra = data_dir, import_dir, list(extra)
        self.proc = None

    def start(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        log = open(os.path.join(self.data_dir, "saed.log"), "a")
        self.proc = subprocess.Popen([SAED, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
                                      "--import-dir", self.import_dir, "--log-level", "warn", "--workers", "1",
                                      "--blas-threads", "1", "--job-nice", "19"] + self.extra,
                                     stdout=log, stderr=log)
        log.close()
        for _ in range(200):
            if self.proc.poll() is not None:
                break
            try:
                if raw_request(self.port, "GET", "/v1/health", timeout=2).status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        print("saed did not start:", open(os.path.join(self.data_dir, "saed.log")).read()[-800:])
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, method, path, body=None, want=None):
        r = raw_request(self.port, method, path, None if body is None else json.dumps(body))
        if want is not None and r.status != want:
            raise RuntimeError(f"{method} {path}: {r.status} {r.body[:300]!r}")
        return r

    def health_ms(self):
        t0 = time.monotonic()
        try:
            r = raw_request(self.port, "GET", "/v1/health", timeout=5)
            ok = r.status == 200
        except OSError:
            ok = False
        ms = (time.monotonic() - t0) * 1000
        stats["health samples"] += 1
        stats["health worst ms"] = max(stats["health worst ms"], ms)
        return ok, ms

    def wait_job(self, jid, timeout=60):
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            j = self.call("GET", f"/v1/jobs/{jid}", want=200).json()
            if j["state"] not in ("queued", "running"):
                return j
            time.sleep(0.1)
        return j


def npy_bytes(rows, dim, seed):
    """A little-endian float32 .npy of a deterministic pseudo-random array (no NumPy needed)."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    rng = random.Random(seed)
    n = rows * dim
    vals = [rng.gauss(0, 1) for _ in range(min(n, 4096))]
    data = struct.pack(f"<{len(vals)}f", *vals)
    body = (data * (n // len(vals) + 1))[:n * 4]
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


def slow_upload(port, target, body, chunk=256 << 10, pause=0.03):
    """POSTs body as application/octet-stream a chunk at a time; returns the reply."""
    s = socket.socket()
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\nContent-Type: application/"
                  b"octet-stream\r\nContent-Length: %d\r\n\r\n" % (target.encode(), port, len(body)))
        for i in range(0, len(body), chunk):
            s.sendall(body[i:i + chunk])
            time.sleep(pause)
        data = recv_all(s)
    finally:
        s.close()
    return parse_reply(data)


TINY_TRAIN = {"arch": "relu", "n_latents": 16, "sparsity_coef": 0.05}


def train_body(ds, steps):
    return {"type": "train", "dataset": ds, "sae": TINY_TRAIN,
            "train": {"steps": steps, "batch_size": 64, "eval_rows": 64, "checkpoint_every": 100}}


# ---------------------------------------------------------------- 1. the hostile client

def counts(d):
    out = {}
    for what in ("datasets", "jobs", "saes"):
        items = d.call("GET", f"/v1/{what}?limit=1000", want=200).json()["items"]
        out[what] = len(items)
        if what == "jobs":
            out["job states"] = sorted((j["id"], j["state"]) for j in items)
    return out


def hostile_cases(routes, ids):
    """(method, target bytes, body bytes or None, content type, must refuse) for every route x bad input."""
    bad_ids = [b"abc", b"-1", b"0", b"1.5", b"99999999999999999999999", b"1%00", b"%00", b"1%002",
               b"%ff%fe", b"\xff\xfe", b"%C3%28", b"1e3"]
    bad_queries = [b"bogus=1", b"limit=-1", b"limit=99999999999999999999", b"limit=abc", b"offset=-5",
                   b"limit=%00", b"after=%ff", b"sort=\xc3\x28", b"limit=1&limit=2", b"step=-1",
                   b"latents=%00,1", b"saes=-1,99999999999999999999", b"dataset=1e999", b"since_step=-9"]
    bad_json = [b"{", b"[]", b"\"str\"", b"null", b"42", b"{\"a\":1", b"{}", b"{\"kind\":123}",
                b"{\"type\":[]}", b"{\"name\":\"\xff\xfe\"}", b"{\"\xc3\x28\":1}", b"{\"kind\":\"circles\",\"n\":1e999}",
                b"{\"kind\":\"circles\",\"name\":\"x\",\"params\":{\"n_circles\":-3,\"dim\":8}}",
                b"{\"kind\":\"circles\",\"name\":\"x\",\"params\":{\"n_circles\":99999999999999999999,\"dim\":8}}",
                b"{\"kind\":\"circles\",\"name\":\"x\",\"params\":{\"n_circles\":4,\"dim\":-8}}",
                b"{\"type\":\"train\",\"dataset\":-1,\"sae\":{},\"train\":{}}",
                b"{\"type\":\"train\",\"dataset\":%d,\"sae\":{\"arch\":\"relu\",\"n_latents\":-16},\"train\":{}}" % ids["ds"],
                b"{\"type\":\"train\",\"dataset\":%d,\"sae\":{\"arch\":\"relu\",\"n_latents\":1e300},\"train\":{}}" % ids["ds"],
                b"{\"type\":\"train\",\"dataset\":%d,\"sae\":{\"arch\":\"relu\",\"n_latents\":16},"
                b"\"train\":{\"steps\":-5}}" % ids["ds"],
                b"{\"type\":\"analyze\",\"sae\":%d,\"n_samples\":-1}" % ids["sae"],
                b"{\"type\":\"analyze\",\"sae\":\"%d\"}" % ids["sae"],
                b"{\"rows\":[[1e999]]}", b"{\"rows\":\"x\"}", b"{\"rows\":[[1,2],[3]]}",
                b"[" * 5000 + b"]" * 5000, b"{\"a\":\"\x00\"}", b"\xef\xbb\xbf{}",
                b"{\"kind\":\"npy\",\"name\":\"x\",\"path\":\"../../etc/passwd\"}",
                b"{\"kind\":\"npy\",\"name\":\"x\",\"path\":\"a%00.npy\"}",
                b"{\"kind\":\"npy\",\"name\":\"x\",\"path\":\"a\x00.npy\"}",
                b" " * (2 << 20)]  # oversized: past --max-body
    cases = []
    spec_methods = {}
    for method, path in routes:
        spec_methods.setdefault(path, set()).add(method)
    for path, methods in spec_methods.items():
        real = path.replace("{id}", str(ids.get((path.split("/") + ["", "", ""])[2], ids["ds"]))).replace("{n}", "0")
        # wrong methods
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            if m not in methods:
                cases.append((m, real.encode(), b"{}" if m in ("POST", "PUT", "PATCH") else None, "application/json"))
        for method in methods:
            body = {"POST": b"{}", "PUT": b"x\n"}.get(method)
            ctype = "text/plain" if method == "PUT" else "application/json"
            # bad ids in the path (and bad bytes, %00), for every parameter in it
            for seg in ("{id}", "{n}"):
                if seg in path:
                    for b in bad_ids:
                        if seg == "{n}" and b == b"0":  # latent or group 0 exists
                            continue
                        t = path.replace(seg, "\x00").replace("{id}", str(ids["ds"])).replace("{n}", "0")
                        cases.append((method, t.encode().replace(b"\x00", b), body, ctype))
            if path in ("/", "/metrics"):
                continue
            # bad query strings: refused (or ignored by a read); a write with a bad query must change nothing
            if not (method == "DELETE" or path.endswith("/cancel")):
                for q in bad_queries:
                    cases.append((method, real.encode() + b"?" + q, body, ctype))
            # bad bodies on every route that takes one
            if method == "POST" and "{id}" not in path or path.endswith("/encode"):
                for b in bad_json:
                    cases.append((method, real.encode(), b, "application/json"))
                cases.append((method, real.encode(), b"{}", "text/html"))
            if path.endswith("/labels") and method == "PUT":
                for b in (b"a\xff\xfeb\n", b"\x00\n", b"x\n" * 3, b"\xc3\x28\n", b"y" * (2 << 20)):
                    cases.append((method, real.encode(), b, "text/plain"))
    # uploads that are not what they say (streamed bodies)
    for q in (b"kind=npy&name=junk", b"kind=npy&name=%ff", b"kind=npy&name=%00x", b"kind=npy&name=j&bogus=1",
              b"kind=circles&name=j"):
        for b in (b"garbage", b"\x93NUMPY\x01\x00\xff\xff", npy_bytes(4, 4, 1)[:90], b""):
            cases.append(("POST", b"/v1/datasets?" + q, b, "application/octet-stream"))
    for b in (b"not a tar", b"\x00" * 1024, b"ustar" * 300):
        cases.append(("POST", b"/v1/saes", b, "application/x-tar"))
        cases.append(("POST", b"/v1/saes?dataset=-1", b, "application/x-tar"))
    return cases


def hostile(d, ids):
    spec = json.load(open(os.path.join(ROOT, "openapi.json")))
    routes = [(m.upper(), p) for p, v in spec["paths"].items() for m in v
              if m in ("get", "post", "put", "delete", "patch")]
    cases = hostile_cases(routes, ids)
    before = counts(d)
    ds_before = d.call("GET", f"/v1/datasets/{ids['ds']}", want=200).json()
    bad = []
    for i, (method, target, body, ctype) in enumerate(cases):
        try:
            r = raw_request(d.port, method, target, body, ctype)
        except OSError as e:  # the daemon closing on an oversized body is fine if it answered first
            r = Resp(-1, {}, str(e).encode())
        stats["requests"] += 1
        if 200 <= r.status < 300:
            stats["2xx"] += 1
            # every case is malformed (bad id, unknown or repeated or bad parameter, bad body, wrong method)
            bad.append(f"{method} {target[:80]!r}: {r.status} (a malformed request succeeded)")
        elif 400 <= r.status < 500:
            stats["4xx"] += 1
        elif r.status >= 500:
            stats["5xx"] += 1
            bad.append(f"{method} {target[:80]!r}: {r.status} {r.body[:200]!r}")
        elif r.status <= 0:
            bad.append(f"{method} {target[:80]!r}: no HTTP answer ({r.body[:80]!r})")
        if r.status >= 400 and r.headers.get("content-type", "").split(";")[0] != "application/problem+json":
            stats["not problem+json"] += 1
            bad.append(f"{method} {target[:80]!r}: {r.status} as {r.headers.get('content-type')!r}")
        if i % 25 == 0:
            ok, ms = d.health_ms()
            if not ok or ms > HEALTH_MS:
                bad.append(f"health between batches: ok={ok} {ms:.1f} ms")
        if not d.alive():
            stats["crashes"] += 1
            bad.append(f"{method} {target[:80]!r}: the daemon died")
            break
    for b in bad[:25]:
        print("  ", b)
    check("hostile matrix: every malformed request refused with a 4xx problem+json, health < 100 ms",
          not bad, f"{len(bad)} of {len(cases)} bad")
    if not d.alive():
        return
    after = counts(d)
    check("the hostile matrix changed nothing (datasets, jobs, SAEs, job states)", before == after,
          f"{before} -> {after}")
    ds_after = d.call("GET", f"/v1/datasets/{ids['ds']}", want=200).json()
    check("the bad label files left the dataset's labels alone", ds_before == ds_after, f"{ds_before} -> {ds_after}")
    left = glob.glob(os.path.join(d.data_dir, "datasets", ".staging-*")) + \
        glob.glob(os.path.join(d.data_dir, "saes", "import-*"))
    stats["orphans"] += len(left)
    check("the refused uploads and imports left no staging folder", not left, f"{left}")
    print(f"hostile: {len(cases)} requests")


def raw_connect(src, port):
    s = socket.socket()
    s.setblocking(True)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def slow_and_streams(d, ids):
    """300 half-sent requests and 300 idle event streams from 8 loopback addresses, health meanwhile."""
    job = d.call("POST", "/v1/jobs", train_body(ids["ds"], 10 ** 7))
    if job.status not in (200, 201, 202):
        check("a long job to stream", False, f"{job.status} {job.body[:200]!r}")
        return
    jid = job.json()["id"]
    socks, held_streams, refused_streams = [], 0, 0
    try:
        for i in range(300):  # slowloris: request line and part of a header, never finished
            s = raw_connect(f"127.0.0.{2 + i % 4}", d.port)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: " % d.port)
            socks.append(s)
        streams = []
        for i in range(300):
            s = raw_connect(f"127.0.0.{6 + i % 4}", d.port)
            s.sendall(b"GET /v1/jobs/%d/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n"
                      % (jid, d.port))
            streams.append(s)
            socks.append(s)
        for s in streams:  # each one's head: 200 text/event-stream, kept open
            try:
                head = s.recv(4096)
            except OSError:
                head = b""
            if head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head:
                held_streams += 1
            else:
                refused_streams += 1
        worst = 0.0
        for _ in range(20):
            ok, ms = d.health_ms()
            worst = max(worst, ms if ok else 1e9)
            time.sleep(0.02)
        r = raw_request(d.port, "GET", "/v1/jobs?limit=1")
        check("300 slowloris + 300 event streams from 8 addresses: health < 100 ms, requests still served",
              worst < HEALTH_MS and r.status == 200 and d.alive(),
              f"worst {worst:.1f} ms, GET /v1/jobs {r.status}, alive {d.alive()}")
        check("all 300 idle event streams held", held_streams == 300, f"{held_streams} held, {refused_streams} refused")
        print(f"streams: {held_streams} held, {refused_streams} refused; health worst {worst:.1f} ms")
    finally:
        for s in socks:
            s.close()
        d.call("POST", f"/v1/jobs/{jid}/cancel")
        d.wait_job(jid, 30)


# ---------------------------------------------------------------- 2. the kill -9 loop

def kill_loop(tmp, n_kills, seed):
    data, imports = os.path.join(tmp, "kill-data"), os.path.join(tmp, "kill-imports")
    os.makedirs(data)
    os.makedirs(imports)
    big = npy_bytes(4000, 512, 7)  # 8 MB: an import copies it, an upload streams it
    with open(os.path.join(imports, "big.npy"), "wb") as f:
        f.write(big)
    rng = random.Random(seed)
    d = Daemon(data, imports)
    if not check("kill loop: the daemon starts", d.start()):
        return
    circ = d.call("POST", "/v1/datasets", {"kind": "circles", "name": "kc",
                                          "params": {"n_circles": 4, "dim": 32, "p_active": 0.3, "seed": 3}},
                  want=201).json()["id"]
    first = d.call("POST", "/v1/jobs", train_body(circ, 200), want=None).json()["id"]
    d.wait_job(first)
    sae0 = d.call("GET", f"/v1/jobs/{first}", want=200).json()["result"]["sae"]
    actions = ["upload", "import", "train", "analyze"]
    submitted, made, in_flight = [], [], 0
    for k in range(n_kills):
        action = actions[k % len(actions)]
        thread, done = None, []
        if action in ("upload", "import"):
            def send(port=d.port, action=action, k=k):
                try:
                    if action == "import":
                        r = raw_request(port, "POST", "/v1/datasets", json.dumps({"kind": "npy", "name": "im%d" % k,
                                                                                  "path": "big.npy"}), timeout=30)
                    else:  # streamed slowly (about a second), so the kill can land mid-body
                        r = slow_upload(port, "/v1/datasets?kind=npy&name=up%d" % k, big)
                    if r.status == 201:
                        made.append(r.json()["id"])
                except (OSError, ValueError):
                    pass
                done.append(1)
            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.0, 0.03) if action == "import" else rng.uniform(0.05, 1.0))
            in_flight += not done
        else:
            body = train_body(circ, 6000) if action == "train" else \
                {"type": "analyze", "sae": sae0, "dataset": circ, "n_samples": 200000}
            r = d.call("POST", "/v1/jobs", body)
            if r.status < 300:
                submitted.append(r.json()["id"])
            time.sleep(rng.uniform(0.1, 1.5) if action == "train" else rng.uniform(0.05, 0.6))
            in_flight += bool(submitted) and d.call("GET", f"/v1/jobs/{submitted[-1]}").json()["state"] == "running"
        if not d.alive():
            stats["crashes"] += 1
            check(f"kill loop {k}: alive before the kill", False, open(os.path.join(data, "saed.log")).read()[-500:])
        else:
            d.kill9()
            stats["kills"] += 1
        if thread:
            thread.join(5)
        if not check(f"kill loop {k} ({action}): restarts", d.start()):
            return
    # the last life: every job comes back and finishes
    jobs = d.call("GET", "/v1/jobs?limit=1000", want=200).json()["items"]
    t_end = time.monotonic() + 90
    while time.monotonic() < t_end and any(j["state"] in ("queued", "running") for j in jobs):
        time.sleep(0.3)
        jobs = d.call("GET", "/v1/jobs?limit=1000", want=200).json()["items"]
    states = {j["id"]: j["state"] for j in jobs}
    check("every job submitted in the loop came back and succeeded",
          all(states.get(j) == "succeeded" for j in submitted), f"{[(j, states.get(j)) for j in submitted]}")
    lost = []
    for j in jobs:
        if j["state"] != "succeeded":
            continue
        if j["type"] == "train":
            sae = j["result"]["sae"]
            for f in ("decoder.npy", "encoder.npy"):
                if d.call("GET", f"/v1/saes/{sae}/{f}").status != 200:
                    lost.append(f"job {j['id']}: sae {sae} {f}")
        elif j["type"] == "analyze":
            if d.call("GET", f"/v1/saes/{j['spec']['sae'] if 'spec' in j else sae0}/analysis").status != 200:
                lost.append(f"job {j['id']}: analysis")
    listed = {ds["id"] for ds in d.call("GET", "/v1/datasets?limit=1000", want=200).json()["items"]}
    for ds in made:  # a 201 before the kill is a promise: the dataset and its rows are there after it
        if ds not in listed or d.call("GET", f"/v1/datasets/{ds}/rows.npy?offset=3990&limit=10").status != 200:
            lost.append(f"dataset {ds} (answered 201 before the kill)")
    stats["results lost"] = len(lost)
    check("no succeeded job or stored dataset lost its result", not lost, f"{lost}")
    d.stop()
    orphans = glob.glob(os.path.join(data, "datasets", ".staging-*")) + glob.glob(os.path.join(data, "saes", "import-*"))
    stats["orphans"] += len(orphans)
    check("no staging folder left after the restarts", not orphans, f"{orphans}")
    db = sqlite3.connect(os.path.join(data, "saed.db"))
    res = db.execute("PRAGMA integrity_check").fetchall()
    db.close()
    check("saed.db integrity_check after the kills", res == [("ok",)], f"{res}")
    print(f"kill loop: {stats['kills']} kills, {in_flight} of them mid-action, {len(made)} datasets made, "
          f"{len(submitted)} jobs submitted, "
          f"{sum(1 for s in states.values() if s == 'succeeded')} of {len(states)} jobs succeeded")


def main():
    t0 = time.monotonic()
    seed = int(os.environ.get("SAED_ROBUST_SEED", "0")) or int(time.time()) % 100000
    print(f"seed {seed} (SAED_ROBUST_SEED={seed} repeats the kill timings)")
    with tempfile.TemporaryDirectory(prefix="saed-robust-") as tmp:
        data, imports = os.path.join(tmp, "data"), os.path.join(tmp, "imports")
        os.makedirs(data)
        os.makedirs(imports)
        with open(os.path.join(imports, "small.npy"), "wb") as f:
            f.write(npy_bytes(64, 8, 2))
        d = Daemon(data, imports, ["--max-connections", str(MAX_CONNECTIONS)])
        if check("the daemon starts", d.start()):
            try:
                ds = d.call("POST", "/v1/datasets", {"kind": "circles", "name": "c",
                                                    "params": {"n_circles": 4, "dim": 16, "p_active": 0.3}},
                            want=201).json()["id"]
                job = d.call("POST", "/v1/jobs", train_body(ds, 100)).json()["id"]
                sae = d.wait_job(job)["result"]["sae"]
                an = d.call("POST", "/v1/jobs", {"type": "analyze", "sae": sae, "dataset": ds,
                                                 "n_samples": 2000}).json()["id"]
                d.wait_job(an)
                ids = {"ds": ds, "datasets": ds, "jobs": job, "saes": sae, "sae": sae, "analyses": 1}
                hostile(d, ids)
                if d.alive():
                    slow_and_streams(d, ids)
                if not d.alive():
                    stats["crashes"] += 1
                    check("the daemon survived the hostile client", False,
                          open(os.path.join(data, "saed.log")).read()[-800:])
            finally:
                d.stop()
        kill_loop(tmp, int(os.environ.get("SAED_ROBUST_KILLS", "10")), seed)
    took = time.monotonic() - t0
    print()
    print(f"{'requests tried':<18}{'4xx':>6}{'5xx':>6}{'crashes':>9}{'kills':>7}{'orphans':>9}"
          f"{'results lost':>14}{'health worst':>14}")
    print(f"{stats['requests']:<18}{stats['4xx']:>6}{stats['5xx']:>6}{stats['crashes']:>9}{stats['kills']:>7}"
          f"{stats['orphans']:>9}{stats['results lost']:>14}{stats['health worst ms']:>11.1f} ms")
    print(f"({stats['2xx']} answered 2xx, {stats['not problem+json']} errors not problem+json, "
          f"{stats['health samples']} health samples, {took:.0f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
