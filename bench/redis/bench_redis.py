#!/usr/bin/env python3
"""`make bench-redis`: linattn_redis.so on one Redis node and on a 3 + 3 cluster, in one run.

For d = 64 and 128, f32 and bf16 memories, three requests are measured side by side:
  lookup     LA.LOOKUP of one query (the answer is d float32 numbers)
  get        GET of a plain value the size of that answer (Redis's own cheapest read)
  get-state  GET of the whole stored memory (what a user of a plain key-value store would fetch
             to answer locally); the pipelined client also answers it locally
by redis-benchmark (one request per round trip, then 16 in flight per connection) and by
linattn_redis_client (pipelined, hiredis). On the cluster every primary holds its own copy of
each key (a hash tag per primary) and gets its own load generator, as a cluster-aware client
spreads its keys. Memory per key is Redis's used_memory grown over many memories, against the
state's own numbers. Writes OUT.json and OUT.md; figures only, nothing here is a test.

The load generators share the machine's cores with the servers; the report says how many."""
import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import redis

DIMS = [64, 128]
DTYPES = ["f32", "bf16"]
OPS = ["lookup", "get", "get-state"]
TOKENS = 256


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def query_without_nul(d, rng):
    """One float32 query whose bytes hold no NUL: redis-benchmark takes its arguments from argv."""
    q = rng.standard_normal(d).astype(np.float32) / np.float32(np.sqrt(d))
    q = np.where(np.abs(q) < 1e-3, np.float32(1e-3), q).astype(np.float32)
    b = bytearray(q.tobytes())
    for i in range(len(b)):
        if b[i] == 0:  # only mantissa bytes can be 0 at these magnitudes: a change of < 1 ulp * 2^16
            b[i] = 1
    assert b"\0" not in b
    return bytes(b)


def cluster_ports(n):
    """n free ports <= 55535 whose bus ports (+10000, Redis Cluster's rule) are free as well."""
    out = []
    while len(out) < n:
        p = free_ports(1)[0]
        if p > 55535 or p in out:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
            out.append(p)
        except OSError:
            pass
    return out


class Node:
    """One redis-server with the module, on a free loopback port; SHUTDOWN NOSAVE, then SIGKILL."""

    def __init__(self, module, work):
        self.port = free_ports(1)[0]
        self.dir = os.path.join(work, f"node-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "no", "--loadmodule", module, "--logfile", os.path.join(self.dir, "redis.log")])
        t0 = time.time()
        while True:
            try:
                if self.client().ping():
                    return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.time() - t0 > 20:
                    log_file = os.path.join(self.dir, "redis.log")
                    tail = open(log_file).read()[-600:] if os.path.exists(log_file) else ""
                    raise RuntimeError(f"redis-server did not start ({log_file}):\n{tail}")
                time.sleep(0.02)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self):
        try:
            self.client().shutdown(nosave=True)
        except redis.exceptions.RedisError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    """apps/redis/redis-cluster.sh: 3 primaries and 3 replicas, stopped by the same script."""

    def __init__(self, script, module, work):
        self.script = script
        self.dir = os.path.join(work, "cluster")
        shutil.rmtree(self.dir, ignore_errors=True)
        ports = cluster_ports(6)
        subprocess.run(["sh", script, "start", self.dir, module, *map(str, ports)], check=True)
        c = redis.Redis(host="127.0.0.1", port=ports[0])
        self.primaries = []  # (port, first slot)
        for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
            self.primaries.append((int(primary[1]), int(start), int(end)))
        self.primaries.sort()

    def tag_for(self, port, c):
        """A hash tag whose slot the primary on `port` serves."""
        _, start, end = next(p for p in self.primaries if p[0] == port)
        for i in range(100000):
            tag = f"p{i}"
            if start <= c.execute_command("CLUSTER", "KEYSLOT", tag) <= end:
                return tag
        raise RuntimeError("no hash tag found for port %d" % port)

    def stop(self):
        subprocess.run(["sh", self.script, "stop", self.dir], check=False)


def populate(c, prefix, rng):
    """For each (d, dtype): the memory, a plain value of the answer's size, the stored state."""
    for d in DIMS:
        k = rng.standard_normal((TOKENS, d)).astype(np.float32) / np.float32(np.sqrt(d))
        v = rng.standard_normal((TOKENS, d)).astype(np.float32)
        c.set(f"{prefix}res:{d}", os.urandom(4 * d).replace(b"\0", b"\1"))
        for dt in DTYPES:
            name = f"{prefix}la:{d}:{dt}"
            c.delete(name)
            c.execute_command("LA.CREATE", name, "DK", d, "DV", d, "DTYPE", dt)
            c.execute_command("LA.WRITE", name, "KEYS", k.tobytes(), "VALUES", v.tobytes())
            c.set(f"{prefix}state:{d}:{dt}", c.execute_command("LA.EXPORT", name))


def key_of(op, d, dt, prefix):
    return {"lookup": f"{prefix}la:{d}:{dt}", "get": f"{prefix}res:{d}", "get-state": f"{prefix}state:{d}:{dt}"}[op]


def benchmark_args(op, key, query):
    return ["LA.LOOKUP", key, "QUERIES", query] if op == "lookup" else ["GET", key]


def redis_benchmark(port, args, conns, pipeline, n):
    out = subprocess.run(
        [b"redis-benchmark", b"-h", b"127.0.0.1", b"-p", str(port).encode(), b"-c", str(conns).encode(),
         b"-n", str(n).encode(), b"-P", str(pipeline).encode(), b"--csv",
         *[a if isinstance(a, bytes) else str(a).encode() for a in args]],
        check=True, capture_output=True).stdout
    # The last seven fields of the last line: the test's name (the command line) may hold any byte.
    header = out.split(b"\n", 1)[0].decode().split(",")[1:]
    fields = out.rstrip(b"\n").rsplit(b"\n", 1)[-1].rsplit(b",", len(header))[1:]
    r = dict(zip((h.strip('"') for h in header), (f.decode().strip('"') for f in fields)))
    return {"requests_per_s": float(r["rps"]), "p50_ms": float(r["p50_latency_ms"]),
            "p99_ms": float(r["p99_latency_ms"])}


def pipelined_client(binary, targets, op, d, pipeline, conns, seconds):
    out = subprocess.run([binary, "--mode", op, "--dk", str(d), "--pipeline", str(pipeline), "--connections",
                          str(conns), "--seconds", str(seconds), *sum((["--target", t] for t in targets), [])],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return {"requests_per_s": r["requests_per_s"], "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "reply_bytes": r["reply_bytes"]}


def measure(setup, targets, query_of, a):
    """Every (d, dtype, op, tool, pipeline) on `targets` [(port, prefix)], one load generator each."""
    rows = []
    for d in DIMS:
        for dt in DTYPES:
            for op in OPS:
                if op == "get" and dt != DTYPES[0]:
                    continue  # the answer is float32 whatever the state's dtype
                for tool, pipeline in [("redis-benchmark", 1), ("redis-benchmark", 16), ("client", 1),
                                       ("client", 16)]:
                    scale = 0.2 if op == "get-state" else 1.0
                    if tool == "redis-benchmark":
                        n = int(a.requests * scale * (4 if pipeline > 1 else 1))
                        conns = max(1, a.connections // len(targets))
                        with concurrent.futures.ThreadPoolExecutor(len(targets)) as ex:
                            parts = list(ex.map(lambda t: redis_benchmark(
                                t[0], benchmark_args(op, key_of(op, d, dt, t[1]), query_of[d]), conns, pipeline,
                                n // len(targets)), targets))
                        r = {"requests_per_s": sum(p["requests_per_s"] for p in parts),
                             "p50_ms": max(p["p50_ms"] for p in parts), "p99_ms": max(p["p99_ms"] for p in parts),
                             "connections": conns * len(targets)}
                    else:
                        conns = max(len(targets), 3)
                        r = pipelined_client(a.client, [f"{t[0]}={key_of(op, d, dt, t[1])}" for t in targets], op,
                                             d, pipeline, conns, a.seconds)
                        r["connections"] = conns
                    r.update({"setup": setup, "d": d, "dtype": dt if op != "get" else "f32", "op": op,
                              "tool": tool, "pipeline": pipeline})
                    log(f"{setup:8s} d={d:3d} {r['dtype']:4s} {op:9s} {tool:15s} P={pipeline:2d}: "
                        f"{r['requests_per_s']:10.0f}/s p99 {r['p99_ms']:.3f} ms")
                    rows.append(r)
    return rows


def memory_per_key(c, rng, count):
    """used_memory grown by `count` memories of each (d, dtype), against the state's numbers."""
    out = []
    for d in DIMS:
        for dt in DTYPES:
            k = rng.standard_normal((16, d)).astype(np.float32).tobytes()
            c.execute_command("MEMORY", "PURGE")
            before = c.info("memory")["used_memory"]
            for i in range(count):
                c.execute_command("LA.CREATE", f"mem:{d}:{dt}:{i}", "DK", d, "DV", d, "DTYPE", dt)
                c.execute_command("LA.WRITE", f"mem:{d}:{dt}:{i}", "KEYS", k)
            after = c.info("memory")["used_memory"]
            payload = d * d * (4 if dt == "f32" else 2)
            per_key = (after - before) / count
            out.append({"d": d, "dtype": dt, "payload_bytes": payload, "per_key_bytes": per_key,
                        "memory_usage_bytes": c.execute_command("MEMORY", "USAGE", f"mem:{d}:{dt}:0"),
                        "export_bytes": len(c.execute_command("LA.EXPORT", f"mem:{d}:{dt}:0")),
                        "overhead": per_key / payload - 1})
            log(f"memory d={d} {dt}: {per_key:.0f} B per key for {payload} B of state "
                f"({100 * (per_key / payload - 1):.1f}% more)")
            for i in range(count):
                c.delete(f"mem:{d}:{dt}:{i}")
    return out


def goals(rows, mem):
    def rate(setup, d, dt, op, tool, p):
        return next(r["requests_per_s"] for r in rows if (r["setup"], r["d"], r["dtype"], r["op"], r["tool"],
                                                           r["pipeline"]) == (setup, d, dt, op, tool, p))
    ratios_get, ratios_state = [], []
    for setup in sorted({r["setup"] for r in rows}):
        for tool, p in [("redis-benchmark", 1), ("redis-benchmark", 16), ("client", 1), ("client", 16)]:
            for d in DIMS:
                for dt in DTYPES:
                    lk = rate(setup, d, dt, "lookup", tool, p)
                    ratios_get.append({"setup": setup, "tool": tool, "pipeline": p, "d": d, "dtype": dt,
                                       "value": lk / rate(setup, d, "f32", "get", tool, p)})
                    if d == 128:
                        ratios_state.append({"setup": setup, "tool": tool, "pipeline": p, "d": d, "dtype": dt,
                                             "value": lk / rate(setup, d, dt, "get-state", tool, p)})
    worst_get = min(ratios_get, key=lambda x: x["value"])
    worst_state = min(ratios_state, key=lambda x: x["value"])
    worst_mem = max(mem, key=lambda x: x["overhead"])
    return [
        {"goal": "LA.LOOKUP >= 80% of GET of an answer-sized value", "target": 0.8,
         "value": worst_get["value"], "where": worst_get, "met": worst_get["value"] >= 0.8,
         "rows_met": sum(x["value"] >= 0.8 for x in ratios_get), "rows": len(ratios_get)},
        {"goal": "LA.LOOKUP >= 10x fetching the state (d = 128)", "target": 10.0,
         "value": worst_state["value"], "where": worst_state, "met": worst_state["value"] >= 10,
         "rows_met": sum(x["value"] >= 10 for x in ratios_state), "rows": len(ratios_state)},
        {"goal": "memory per key <= 110% of the state's numbers", "target": 0.10,
         "value": worst_mem["overhead"], "where": {"d": worst_mem["d"], "dtype": worst_mem["dtype"]},
         "met": worst_mem["overhead"] <= 0.10},
    ], ratios_get, ratios_state


def write_markdown(res, path):
    L = [f"# make bench-redis: {res['cpu']}, {res['cores']} cores shared by the servers and the load generators",
         "", f"Redis {res['redis_version']}; {res['tokens']} tokens written per memory; the answer to one query is "
         "d float32 numbers. Rates are requests per second over all connections; p99 is per request "
         "(redis-benchmark) or per pipelined batch (client). `cluster`: 3 primaries + 3 replicas, one load "
         "generator per primary, summed.", "",
         "| setup | d | dtype | tool | P | LA.LOOKUP /s | p99 ms | GET answer-size /s | p99 ms | GET state /s | p99 ms "
         "| lookup / GET | lookup / state |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = res["rows"]

    def find(setup, d, dt, op, tool, p):
        return next(r for r in rows if (r["setup"], r["d"], r["dtype"], r["op"], r["tool"], r["pipeline"]) ==
                    (setup, d, dt, op, tool, p))
    for setup in ["node", "cluster"]:
        if not any(r["setup"] == setup for r in rows):
            continue
        for tool, p in [("redis-benchmark", 1), ("redis-benchmark", 16), ("client", 1), ("client", 16)]:
            for d in DIMS:
                for dt in DTYPES:
                    lk, g, st = find(setup, d, dt, "lookup", tool, p), find(setup, d, "f32", "get", tool, p), \
                        find(setup, d, dt, "get-state", tool, p)
                    L.append(f"| {setup} | {d} | {dt} | {tool} | {p} | {lk['requests_per_s']:,.0f} | "
                             f"{lk['p99_ms']:.3f} | {g['requests_per_s']:,.0f} | {g['p99_ms']:.3f} | "
                             f"{st['requests_per_s']:,.0f} | {st['p99_ms']:.3f} | "
                             f"{lk['requests_per_s'] / g['requests_per_s']:.2f} | "
                             f"{lk['requests_per_s'] / st['requests_per_s']:.1f}x |")
    L += ["", "`GET state` by redis-benchmark only fetches the bytes; the client's also answers the query from "
          "them (the core's lookup on the fetched bytes, checksum skipped).", "",
          "| d | dtype | state bytes | used_memory per key | MEMORY USAGE | LA.EXPORT bytes | overhead |",
          "|---|---|---|---|---|---|---|"]
    for m in res["memory"]:
        L.append(f"| {m['d']} | {m['dtype']} | {m['payload_bytes']:,} | {m['per_key_bytes']:,.0f} | "
                 f"{m['memory_usage_bytes']:,} | {m['export_bytes']:,} | {100 * m['overhead']:.1f}% |")
    L += ["", "| goal | value (worst row) | met | rows meeting it |", "|---|---|---|---|"]
    for g in res["goals"]:
        w = g["where"]
        where = ", ".join(f"{k} {v}" for k, v in w.items() if k != "value")
        L.append(f"| {g['goal']} | {g['value']:.3g} ({where}) | {'yes' if g['met'] else 'no'} | "
                 f"{g.get('rows_met', '-')}/{g.get('rows', '-')} |")
    L += ["", f"Wall time {res['wall_seconds']:.0f} s. Reproduce: `make bench-redis`."]
    open(path, "w").write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", required=True, help="linattn_redis.so")
    ap.add_argument("--client", required=True, help="linattn_redis_client")
    ap.add_argument("--cluster-script", required=True, help="apps/redis/redis-cluster.sh")
    ap.add_argument("--work", required=True, help="a directory for the nodes' files")
    ap.add_argument("--out", required=True, help="output prefix: OUT.json, OUT.md")
    ap.add_argument("--requests", type=int, default=200000, help="redis-benchmark requests per run (x4 pipelined)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per pipelined-client run")
    ap.add_argument("--connections", type=int, default=12, help="redis-benchmark connections in all")
    ap.add_argument("--keys", type=int, default=200, help="memories per (d, dtype) for memory per key")
    ap.add_argument("--no-cluster", action="store_true", help="one node only")
    a = ap.parse_args()
    # The nodes run in their own directories: every path they are given is absolute.
    a.module, a.client, a.work = (os.path.abspath(p) for p in (a.module, a.client, a.work))
    for tool in ["redis-server", "redis-benchmark", "redis-cli"]:
        if not shutil.which(tool):
            sys.exit(f"bench_redis: {tool} is not installed (make deps installs redis-server and redis-tools)")
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    rng = np.random.default_rng(0)
    query_of = {d: query_without_nul(d, rng) for d in DIMS}
    res = {"cores": os.cpu_count(), "tokens": TOKENS, "rows": []}
    res["cpu"] = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    node = Node(a.module, a.work)
    try:
        c = node.client()
        res["redis_version"] = c.info("server")["redis_version"]
        populate(c, "", rng)
        res["rows"] += measure("node", [(node.port, "")], query_of, a)
        res["memory"] = memory_per_key(c, rng, a.keys)
    finally:
        node.stop()
    if not a.no_cluster:
        cluster = Cluster(a.cluster_script, a.module, a.work)
        try:
            targets = []
            for port, _, _ in cluster.primaries:
                c = redis.Redis(host="127.0.0.1", port=port)
                prefix = "{" + cluster.tag_for(port, c) + "}"
                populate(c, prefix, rng)
                targets.append((port, prefix))
            res["rows"] += measure("cluster", targets, query_of, a)
        finally:
            cluster.stop()
    res["goals"], res["lookup_over_get"], res["lookup_over_state"] = goals(res["rows"], res["memory"])
    res["wall_seconds"] = time.time() - t0
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    write_markdown(res, a.out + ".md")
    for g in res["goals"]:
        log(f"goal: {g['goal']}: {g['value']:.3g} ({'met' if g['met'] else 'not met'})")
    log(f"wrote {a.out}.json and {a.out}.md in {res['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
