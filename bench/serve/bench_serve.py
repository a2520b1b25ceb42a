#!/usr/bin/env python3
"""`make bench-serve`: linattn-serve on loopback, driven by wrk (HTTP, closed loop), h2load (gRPC,
closed loop) and linattn_open_loop (HTTP at fixed rates), in one run. Writes OUT.json, OUT.md
and OUT_latency.png (p99 latency against throughput). Figures only: nothing here is a test.

The load generators share the machine's cores with the server; the report says how many."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

import linattn

D = 128
LEVELS = [1, 4, 16, 64, 256]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def npy_bytes(a):
    import io
    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(a, dtype=np.float32))
    return b.getvalue()


class Server:
    """linattn-serve on free loopback ports, stopped with SIGTERM (SIGKILL after 20 s)."""

    def __init__(self, binary, args, workdir, name):
        self.ready = os.path.join(workdir, name + ".ready.json")
        if os.path.exists(self.ready):
            os.remove(self.ready)
        self.log = open(os.path.join(workdir, name + ".log"), "w")
        self.proc = subprocess.Popen([binary, *args, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
                                      "--ready-file", self.ready], stderr=self.log)
        t0 = time.time()
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.time() - t0 > 120:
                raise RuntimeError(f"linattn-serve did not start: see {self.log.name}")
            time.sleep(0.05)
        ports = json.load(open(self.ready))
        self.http, self.grpc = ports["http"], ports["grpc"]

    def metrics(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics").read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def resident(self):
        """The server's resident memory: its own (anonymous) and the bank files' pages mapped in."""
        out = {}
        for line in open(f"/proc/{self.proc.pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[{"VmRSS": "resident_bytes", "RssAnon": "anonymous_bytes", "RssFile": "file_bytes"}[k]] = int(v.split()[0]) * 1024
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def wrk(url, body_file, content_type, accept, conns, seconds, workdir):
    """Closed loop: `conns` connections, each sending its next request when answered."""
    lua = os.path.join(workdir, "request.lua")
    with open(lua, "w") as f:
        f.write(f"""
wrk.method = "POST"
local f = io.open("{body_file}", "rb"); wrk.body = f:read("*all"); f:close()
wrk.headers["Content-Type"] = "{content_type}"
{'wrk.headers["Accept"] = "' + accept + '"' if accept else ''}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %f, "p90_us": %f, "p99_us": %f}}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
""")
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", lua, url],
                         capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("WRKJSON ")][-1]
    r = json.loads(line[len("WRKJSON "):])
    secs = r["duration_us"] / 1e6
    return {"concurrency": conns, "requests_per_s": r["requests"] / secs, "errors": r["errors"] + r["non2xx"],
            "p50_ms": r["p50_us"] / 1e3, "p90_ms": r["p90_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3}


def grpc_body(workdir, proto_dir, message, text):
    """A gRPC-framed request body: the message encoded by protoc from its text form."""
    enc = subprocess.run(["protoc", f"--proto_path={proto_dir}", f"--encode=linattn.v1.{message}", "linattn.proto"],
                         input=text.encode(), capture_output=True, check=True).stdout
    path = os.path.join(workdir, message + ".grpc")
    with open(path, "wb") as f:
        f.write(b"\x00" + len(enc).to_bytes(4, "big") + enc)
    return path


def h2load(port, method, body, conns, seconds):
    """gRPC over HTTP/2, closed loop: `conns` connections, one call in flight on each."""
    out = subprocess.run(["h2load", "-t1", f"-c{conns}", "-m1", f"-D{seconds}", "-d", body,
                          "-H", "content-type: application/grpc", "-H", "te: trailers",
                          f"http://127.0.0.1:{port}/linattn.v1.Memories/{method}"],
                         capture_output=True, text=True, check=True).stdout
    rps = mean_ms = 0.0
    done = failed = 0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            parts = line.split(",")
            done = int(parts[3].split()[0])
            failed = int(parts[4].split()[0])
        elif line.startswith("time for request:"):
            v = line.split()[5]  # mean
            mean_ms = float(v[:-2]) / 1e3 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1]) * 1e3
    return {"concurrency": conns, "requests_per_s": rps, "errors": failed, "completed": done, "mean_ms": mean_ms}


def open_loop(tool, port, target, body_file, rate, seconds, conns=256):
    out = subprocess.run([tool, "--port", str(port), "--target", target, "--body-file", body_file, "--rate",
                          str(rate), "--seconds", str(seconds), "--connections", str(conns),
                          "--accept", "application/x-npy"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def make_bank(path, n, dtype, prefix, rng, tokens=64):
    if os.path.exists(path):
        return
    log(f"creating {path}: {n} memories, d = {D}, {dtype}, packed symmetric")
    linattn.Bank.create(path + ".tmp")
    b = linattn.Bank(path + ".tmp")
    entries = []
    for i in range(n):
        m = linattn.Memory(D, symmetric=True, dtype=dtype)
        m.write(rng.standard_normal((tokens, D), dtype=np.float32) / np.sqrt(D))
        entries.append((f"{prefix}{i:05d}", m))
        if len(entries) == 1000:
            b.append_all(entries)
            entries = []
    if entries:
        b.append_all(entries)
    os.rename(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the build's bin directory")
    ap.add_argument("--proto", required=True, help="the directory of linattn.proto")
    ap.add_argument("--out", required=True, help="output prefix: OUT.json, OUT.md, OUT_latency.png")
    ap.add_argument("--work", required=True, help="a directory for the banks (kept between runs)")
    ap.add_argument("--seconds", type=int, default=3, help="seconds per closed-loop point")
    ap.add_argument("--memories", type=int, default=10000, help="memories in each search bank")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    serve, open_tool = os.path.join(a.bin, "linattn-serve"), os.path.join(a.bin, "linattn_open_loop")
    rng = np.random.default_rng(0)
    t_start = time.time()

    # The machine's roofs, measured now (1 thread: each request runs on one core).
    roofs_json = os.path.join(a.work, "roofs.json")
    subprocess.run([os.path.join(a.bin, "linattn"), "bench", "--only", "storage", "--threads", "1", "--json",
                    roofs_json], check=True, stdout=subprocess.DEVNULL)
    roofs = json.load(open(roofs_json))["roofs"]

    # Data: a bank to look up, two banks to search, and the softmax baseline's hidden states.
    lookup_bank = os.path.join(a.work, "lookup.lamb")
    make_bank(lookup_bank, 16, "f32", "doc", rng)
    f32_bank, bf16_bank = os.path.join(a.work, "search_f32.lamb"), os.path.join(a.work, "search_bf16.lamb")
    make_bank(f32_bank, a.memories, "f32", "f32-", rng)
    make_bank(bf16_bank, a.memories, "bf16", "bf16-", rng)
    states = os.path.join(a.work, "states")
    os.makedirs(states, exist_ok=True)
    for t in (512, 4096):
        p = os.path.join(states, f"T{t}.npy")
        if not os.path.exists(p):
            np.save(p, rng.standard_normal((t, D), dtype=np.float32) / np.sqrt(D))
    bodies = {}
    for m in (1, 64):
        bodies[m] = os.path.join(a.work, f"q{m}.npy")
        with open(bodies[m], "wb") as f:
            f.write(npy_bytes(rng.standard_normal((m, D), dtype=np.float32)))
    q1_json = os.path.join(a.work, "q1.json")
    with open(q1_json, "w") as f:
        json.dump({"queries": np.load(bodies[1]).tolist()}, f)

    result = {"machine": {"cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(":\t "),
                          "cores": os.cpu_count(), "server_threads": os.cpu_count(),
                          "load_generator_threads": 1, "roofs": roofs},
              "d": D, "seconds_per_point": a.seconds, "closed_loop": {}, "grpc": {}, "open_loop": {},
              "resident": [], "memory_per_document": {}}
    closed = result["closed_loop"]

    # 1. Lookups, the no-op route and the softmax baseline, all from one server.
    s = Server(serve, [lookup_bank, "--states", states], a.work, "lookup")
    try:
        url = f"http://127.0.0.1:{s.http}"
        scenarios = [
            ("noop", "/v1/noop", bodies[1], "application/x-npy", "application/x-npy", 1),
            ("lookup_1_npy", "/v1/memories/doc00000/lookup", bodies[1], "application/x-npy", "application/x-npy", 1),
            ("lookup_1_json", "/v1/memories/doc00000/lookup", q1_json, "application/json", "", 1),
            ("noop_echo_64_npy", "/v1/noop?echo=true", bodies[64], "application/x-npy", "application/x-npy", 64),
            ("lookup_64_npy", "/v1/memories/doc00000/lookup", bodies[64], "application/x-npy", "application/x-npy", 64),
            ("softmax_T512_64_npy", "/v1/states/T512/attend", bodies[64], "application/x-npy", "application/x-npy", 64),
            ("softmax_T4096_64_npy", "/v1/states/T4096/attend", bodies[64], "application/x-npy", "application/x-npy", 64),
            ("softmax_T4096_1_npy", "/v1/states/T4096/attend", bodies[1], "application/x-npy", "application/x-npy", 1),
        ]
        for name, target, body, ctype, accept, m in scenarios:
            # Warm-up, not recorded: the first calls of a shape compile its GEMM kernels.
            wrk(url + target, body, ctype, accept, 4, 1, a.work)
            closed[name] = {"target": target, "queries_per_request": m, "points": []}
            for c in LEVELS:
                p = wrk(url + target, body, ctype, accept, c, a.seconds, a.work)
                p["lookups_per_s"] = p["requests_per_s"] * m
                closed[name]["points"].append(p)
                log(f"{name:24s} c={c:<4d} {p['requests_per_s']:10.0f} req/s  p50 {p['p50_ms']:.3f}  p99 {p['p99_ms']:.3f} ms")
        # gRPC: Health is its no-op; Lookup of one query (packed float32 bytes).
        q1 = np.load(bodies[1]).astype("<f4").tobytes()
        esc = "".join(f"\\x{b:02x}" for b in q1)
        health = grpc_body(a.work, a.proto, "HealthRequest", "")
        look = grpc_body(a.work, a.proto, "LookupRequest",
                         f'name: "doc00000" queries {{ rows: 1 cols: {D} data: "{esc}" }}')
        before = s.metrics().get('linattn_requests_total{route="lookup",transport="grpc",code="200"}', 0)
        for name, method, body in (("health", "Health", health), ("lookup_1", "Lookup", look)):
            result["grpc"][name] = []
            for c in LEVELS:
                p = h2load(s.grpc, method, body, c, a.seconds)
                result["grpc"][name].append(p)
                log(f"grpc {name:19s} c={c:<4d} {p['requests_per_s']:10.0f} req/s  mean {p['mean_ms']:.3f} ms")
        after = s.metrics().get('linattn_requests_total{route="lookup",transport="grpc",code="200"}', 0)
        result["grpc"]["lookup_1_ok_by_server"] = after - before
        # Open loop: fixed rates up to past the closed loop's best.
        for name, target, m in (("noop", "/v1/noop", 1),
                                ("lookup_1_npy", "/v1/memories/doc00000/lookup", 1),
                                ("lookup_64_npy", "/v1/memories/doc00000/lookup", 64),
                                ("softmax_T4096_64_npy", "/v1/states/T4096/attend", 64)):
            best = max(p["requests_per_s"] for p in closed[name]["points"])
            result["open_loop"][name] = {"saturating_rps": best, "points": []}
            for frac in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.2):
                p = open_loop(open_tool, s.http, target, bodies[m], max(1.0, best * frac), max(2.0, a.seconds))
                p["fraction_of_saturation"] = frac
                result["open_loop"][name]["points"].append(p)
                log(f"open loop {name:14s} {frac:4.2f} x {best:.0f}: {p['achieved_rps']:10.0f} req/s  p99 {p['p99_ms']:.3f} ms  late {p['late']}")
        m = s.metrics()
        result["batching_lookup_server"] = {k: v for k, v in m.items() if k.startswith("linattn_batch_")
                                             and ("_count" in k or "_sum" in k)}
    finally:
        s.stop()

    # 1b. Batching on: the same single-query lookups through a server whose batches wait up to
    #     200 us to fill (on threads of their own), against the default above (no waiting).
    s = Server(serve, [lookup_bank, "--max-queue-delay-us", "200"], a.work, "batched")
    try:
        url = f"http://127.0.0.1:{s.http}"
        for name, body, m in (("batched_lookup_1_npy", bodies[1], 1), ("batched_lookup_64_npy", bodies[64], 64)):
            wrk(url + "/v1/memories/doc00000/lookup", body, "application/x-npy", "application/x-npy", 4, 1, a.work)
            closed[name] = {"target": "/v1/memories/doc00000/lookup", "queries_per_request": m,
                            "server": "--max-queue-delay-us 200", "points": []}
            for c in LEVELS:
                before = s.metrics()
                p = wrk(url + "/v1/memories/doc00000/lookup", body, "application/x-npy", "application/x-npy", c,
                        a.seconds, a.work)
                after = s.metrics()
                batches = after["linattn_batch_requests_count"] - before["linattn_batch_requests_count"]
                p["lookups_per_s"] = p["requests_per_s"] * m
                p["requests_per_batch"] = ((after["linattn_batch_requests_sum"] - before["linattn_batch_requests_sum"])
                                           / batches if batches else 0)
                closed[name]["points"].append(p)
                log(f"{name:24s} c={c:<4d} {p['requests_per_s']:10.0f} req/s  p50 {p['p50_ms']:.3f}  "
                    f"p99 {p['p99_ms']:.3f} ms  {p['requests_per_batch']:.1f} requests/batch")
    finally:
        s.stop()

    # 2. Search over `memories` memories, f32 and bf16, one server each; resident memory as
    #    the memories are touched.
    for dtype, bank in (("f32", f32_bank), ("bf16", bf16_bank)):
        s = Server(serve, [bank], a.work, "search_" + dtype)
        try:
            url = f"http://127.0.0.1:{s.http}"
            mapped = os.path.getsize(bank)
            for m, levels in ((1, [1, 2, 4, 16]), (64, [1, 2, 4])):
                name = f"search_{dtype}_{m}"
                wrk(url + "/v1/search?k=10", bodies[m], "application/x-npy", "", 2, 1, a.work)  # warm-up
                closed[name] = {"target": "/v1/search?k=10", "queries_per_request": m, "memories": a.memories, "points": []}
                for c in levels:
                    p = wrk(url + "/v1/search?k=10", bodies[m], "application/x-npy", "", c, max(a.seconds, 4), a.work)
                    p["lookups_per_s"] = p["requests_per_s"] * m * a.memories
                    closed[name]["points"].append(p)
                    log(f"{name:24s} c={c:<4d} {p['requests_per_s']:10.2f} req/s  p50 {p['p50_ms']:.1f}  p99 {p['p99_ms']:.1f} ms")
            result["resident"].append({"dtype": dtype, "after_search": s.metrics()["linattn_resident_bytes"],
                                       "mapped_bytes": mapped})
        finally:
            s.stop()
        # A fresh server: resident memory against the number of memories looked up. The bank is
        # first evicted from the page cache (it was just written or searched): the kernel maps
        # the cached pages around each page fault, so a cached bank would look resident at once.
        fd = os.open(bank, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        s = Server(serve, [bank], a.work, "resident_" + dtype)
        try:
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", s.http)
            names = [f"{dtype}-{i:05d}" for i in range(a.memories)]
            touched = 0
            points = [{"touched": 0, **s.resident()}]
            for goal in sorted({min(g, a.memories) for g in (10, 100, 1000, a.memories)}):
                while touched < goal:
                    conn.request("POST", f"/v1/memories/{names[touched]}/lookup", open(bodies[1], "rb").read(),
                                 {"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
                    r = conn.getresponse()
                    r.read()
                    assert r.status == 200, r.status
                    touched += 1
                points.append({"touched": touched, **s.resident()})
            result["resident"].append({"dtype": dtype, "mapped_bytes": os.path.getsize(bank), "points": points})
            log(f"resident {dtype}: " + ", ".join(f"{p['touched']}: {p['resident_bytes'] / 2**20:.0f} MiB "
                                                  f"(files {p['file_bytes'] / 2**20:.0f})" for p in points))
        finally:
            s.stop()

    # Bytes per document: the stored state against softmax's hidden states.
    state_f32 = D * (D + 1) // 2 * 4 + 128
    result["memory_per_document"] = {
        "linear_packed_f32": state_f32, "linear_packed_bf16": D * (D + 1) // 2 * 2 + 128,
        "linear_full_f32": D * D * 4 + 128, "softmax_T512_f32": 512 * D * 4, "softmax_T4096_f32": 4096 * D * 4}

    # Goals, each with its value and whether it is met.
    def best(name, key="requests_per_s"):
        return max(p[key] for p in closed[name]["points"])
    noop, single = best("noop"), best("lookup_1_npy")
    s1 = closed["search_f32_1"]["points"][0]
    search_bytes = a.memories * (D * (D + 1) // 2 * 4)
    search_gbs = s1["requests_per_s"] * search_bytes / 1e9
    s64 = closed["search_f32_64"]["points"][0]
    search_gflops = s64["requests_per_s"] * 64 * a.memories * 2 * D * D / 1e9
    half = [p for p in result["open_loop"]["lookup_1_npy"]["points"] if p["fraction_of_saturation"] == 0.5][0]
    soft = best("softmax_T4096_64_npy", "lookups_per_s")
    lin64 = best("lookup_64_npy", "lookups_per_s")
    goals = [
        {"goal": "single-query lookups >= 70% of the no-op route's rate", "value": single / noop, "target": 0.7},
        {"goal": ">= 1,000,000 lookups/s with 64-query requests", "value": lin64, "target": 1e6},
        {"goal": "search, 1 query, 1 client: >= 70% of the 1-thread DRAM read roof", "value": search_gbs / roofs["read_gbytes_s_dram_256MiB"], "target": 0.7},
        {"goal": "search, 64 queries, 1 client: >= 70% of the 1-core FMA roof", "value": search_gflops / roofs["fma_gflops_per_core"], "target": 0.7},
        {"goal": "p99 <= 2 ms at half the saturating rate (single-query lookups)", "value": half["p99_ms"], "target": 2.0, "lower_is_better": True},
        {"goal": "linear >= 20x softmax lookups/s at T = 4,096, 64-query requests", "value": lin64 / soft, "target": 20},
    ]
    for g in goals:
        g["met"] = bool(g["value"] <= g["target"]) if g.get("lower_is_better") else bool(g["value"] >= g["target"])
    result["goals"] = goals
    result["derived"] = {"noop_rps": noop, "lookup_1_rps": single, "search_f32_1q_gbytes_s": search_gbs,
                         "search_f32_64q_gflops": search_gflops, "lookup_64_lookups_s": lin64,
                         "softmax_T4096_64_lookups_s": soft}
    result["wall_seconds"] = time.time() - t_start

    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    write_markdown(result, a.out + ".md", os.path.basename(a.out) + "_latency.png")
    plot(result, a.out + "_latency.png", a.work)
    log(f"wrote {a.out}.json, {a.out}.md, {a.out}_latency.png in {result['wall_seconds']:.0f} s")


def write_markdown(r, path, png):
    L = []
    m = r["machine"]
    L.append("# `make bench-serve`: linattn-serve on loopback\n")
    L.append(f"Machine: {m['cpu']}, {m['cores']} cores shared by the server ({m['server_threads']} threads) and "
             f"the load generator ({m['load_generator_threads']} thread). d = {r['d']}; {r['seconds_per_point']} s per "
             f"closed-loop point. Roofs measured in the same run (1 thread): FMA {m['roofs']['fma_gflops_per_core']:.0f} "
             f"GFLOP/s, DRAM read {m['roofs']['read_gbytes_s_dram_256MiB']:.1f} GB/s.\n")
    L.append("## Goals\n\n| goal | value | met |\n|---|---|---|")
    for g in r["goals"]:
        v = g["value"]
        L.append(f"| {g['goal']} | {v:,.3g} | {'yes' if g['met'] else 'no'} |")
    L.append("\n## Closed loop (wrk, HTTP/1.1 keep-alive): requests/s, p50 / p99 ms by concurrency\n")
    L.append("| route | q/request | " + " | ".join(f"c = {c}" for c in LEVELS) + " |")
    L.append("|---|---|" + "---|" * len(LEVELS))
    for name, s in r["closed_loop"].items():
        cells = {p["concurrency"]: f"{p['requests_per_s']:,.0f} ({p['p50_ms']:.2f} / {p['p99_ms']:.2f})" if p['requests_per_s'] >= 100
                 else f"{p['requests_per_s']:,.1f} ({p['p50_ms']:.1f} / {p['p99_ms']:.1f})" for p in s["points"]}
        L.append(f"| {name} | {s['queries_per_request']} | " + " | ".join(cells.get(c, "") for c in LEVELS) + " |")
    L.append("\n`batched_*`: a server started with `--max-queue-delay-us 200` (batches wait up to 200 us to fill, on "
             "threads of their own); requests per batch by concurrency: " +
             "; ".join(f"{n}: " + ", ".join(f"c = {p['concurrency']} {p['requests_per_batch']:.1f}"
                                           for p in r["closed_loop"][n]["points"])
                       for n in ("batched_lookup_1_npy", "batched_lookup_64_npy")) + ". `noop_echo_64_npy` sends "
             "the 64-query body and gets it back: the transport's ceiling for 64-query lookups. Search runs at "
             "fewer connections: each request reads the whole bank.\n")
    L.append("\n## gRPC (h2load, one call in flight per connection): requests/s (mean ms)\n")
    L.append("| RPC | " + " | ".join(f"c = {c}" for c in LEVELS) + " |")
    L.append("|---|" + "---|" * len(LEVELS))
    for name in ("health", "lookup_1"):
        L.append(f"| {name} | " + " | ".join(f"{p['requests_per_s']:,.0f} ({p['mean_ms']:.2f})" for p in r["grpc"][name]) + " |")
    L.append(f"\nLookups the server counted as OK over gRPC: {r['grpc']['lookup_1_ok_by_server']:,.0f}.\n")
    L.append("## Open loop (fixed request rate, latency from when each request was due)\n")
    L.append("| route | rate (x saturation) | achieved req/s | p50 ms | p90 ms | p99 ms | never sent in time |")
    L.append("|---|---|---|---|---|---|---|")
    for name, s in r["open_loop"].items():
        for p in s["points"]:
            L.append(f"| {name} | {p['rate']:,.0f} ({p['fraction_of_saturation']:.2f}) | {p['achieved_rps']:,.0f} | "
                     f"{p['p50_ms']:.3f} | {p['p90_ms']:.3f} | {p['p99_ms']:.3f} | {p['late']} |")
    L.append("\nThe open-loop generator is one thread sharing the 2 cores with the server; at the highest "
             "rates it, not the server, falls behind (requests never sent in time are counted, not timed).\n")
    L.append(f"\n![p99 latency against throughput]({png})\n")
    L.append("## Resident memory against memories looked up (banks are mapped, not read)\n")
    L.append("A fresh server on a bank evicted from the page cache, then single-query lookups of that many "
             "distinct memories; resident = the server's own memory + the bank's pages mapped in (MiB).\n")
    L.append("| bank | file | memories looked up: resident (own + bank pages) |")
    L.append("|---|---|---|")
    for e in r["resident"]:
        if "points" in e:
            L.append(f"| {e['dtype']} | {e['mapped_bytes'] / 2**20:.0f} MiB | " +
                     ", ".join(f"{p['touched']:,}: {p['resident_bytes'] / 2**20:.0f} ({p['anonymous_bytes'] / 2**20:.0f} + "
                               f"{p['file_bytes'] / 2**20:.0f})" for p in e["points"]) + " |")
    L.append("\n## Bytes per document\n\n| form | bytes |\n|---|---|")
    for k, v in r["memory_per_document"].items():
        L.append(f"| {k} | {v:,} |")
    L.append(f"\nWall time of the run: {r['wall_seconds']:.0f} s.\n")
    open(path, "w").write("\n".join(L) + "\n")


def plot(r, png, work):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plot")
        return
    data = os.path.join(work, "latency.dat")
    with open(data, "w") as f:
        for name, s in r["open_loop"].items():
            f.write(f'"{name} (open loop)"\n')
            for p in s["points"]:
                f.write(f"{p['achieved_rps']} {p['p99_ms']}\n")
            f.write("\n\n")
        for name in ("noop", "lookup_1_npy", "lookup_64_npy", "softmax_T4096_64_npy"):
            f.write(f'"{name} (closed loop, c = 1..256)"\n')
            for p in r["closed_loop"][name]["points"]:
                f.write(f"{p['requests_per_s']} {p['p99_ms']}\n")
            f.write("\n\n")
    n = len(r["open_loop"]) + 4
    script = f"""set terminal pngcairo size 1150,560 noenhanced
set title 'linattn-serve on loopback: p99 latency against throughput (d = 128)'
set output '{png}'
set logscale xy
set xlabel 'requests/s'
set ylabel 'p99 latency (ms)'
set key outside right top
set grid
plot for [i=0:{n - 1}] '{data}' index i with linespoints title columnheader(1)
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=False)


if __name__ == "__main__":
    main()
