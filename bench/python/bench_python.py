#!/usr/bin/env python3
"""What the Python bindings cost, measured side by side in one run (make bench-python).

1. Per-call overhead: one query against a stored memory (d = 128 and 64; f32, bf16; full and
   packed symmetric layouts) through MemoryView.lookup, against the same lookup timed in C++ by
   linattn_micro_benchmarks (BM_MemoryViewLookupSingle) in this same run. Overhead = Python - C++.
   Also the floor of any call into the extension (linattn.num_threads) and a live Memory.lookup.
2. Causal linear attention forward+backward through linattn.torch against the same computation
   written in plain PyTorch: chunked (the same algorithm: masked products inside a chunk, the
   state carried across) and naive (the recurrence, token by token). Debian's PyTorch does its
   products through libblas.so.3, the reference BLAS unless another is installed; so that the
   baseline is not judged by that alone, the comparison runs once per BLAS found (the reference
   one, and OpenBLAS from libopenblas0-pthread), each in a process of its own.

Writes OUT.json (every figure) and OUT.md (the tables). Goal (not a test): <= 2 us overhead for
a single lookup at d = 128.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import linattn
import linattn.torch as lt


def median_ns_per_call(fn, calls, repeats=7):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples), min(samples)


def cxx_single_lookups(binary):
    """{(d, bf16, packed): median ns} from the C++ micro benchmark."""
    if not os.path.exists(binary):
        sys.exit(f"bench_python: {binary} not found: build first (make build)")
    out = subprocess.run([binary, "--benchmark_filter=BM_MemoryViewLookupSingle", "--benchmark_format=json",
                          "--benchmark_repetitions=7", "--benchmark_report_aggregates_only=true"],
                         check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        args = dict(part.split(":") for part in b["run_name"].split("/")[1:])
        key = (int(args["d"]), int(args["bf16"]), int(args["packed"]))
        scale = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
        results[key] = b["real_time"] * scale
    return results


def python_single_lookups(configs):
    rng = np.random.default_rng(0)
    results = {}
    for d, bf16, packed in configs:
        h = rng.standard_normal((64, d)).astype(np.float32)
        m = linattn.Memory(d, symmetric=bool(packed), dtype="bf16" if bf16 else "f32")
        m.write(h) if packed else m.write(h, h)
        view = linattn.MemoryView.from_bytes(m.to_bytes())
        q = rng.standard_normal(d).astype(np.float32)
        results[(d, bf16, packed)] = median_ns_per_call(lambda: view.lookup(q), 100_000)[0]
    return results


# --- causal forward+backward -------------------------------------------------------------------------------------

def torch_recurrent(q, k, v, log_decay):
    B, H, T, dk = q.shape
    S = q.new_zeros(B, H, dk, v.shape[-1])
    outs = []
    for t in range(T):
        if log_decay is not None:
            S = S * log_decay[:, :, t].exp()[..., None]
        S = S + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], S))
    return torch.stack(outs, 2)


def torch_chunked(q, k, v, log_decay, L=32):
    """The chunked form in plain PyTorch: inside a chunk, (q~ k~^T masked) v with q~ = q e^b and
    k~ = k e^(-b) (b the cumulative log decay since the chunk's start); across chunks, the state."""
    B, H, T, dk = q.shape
    dv = v.shape[-1]
    C = T // L
    q, k, v = (x.reshape(B, H, C, L, -1) for x in (q, k, v))
    if log_decay is None:
        b = q.new_zeros(B, H, C, L, dk)
    else:
        b = log_decay.reshape(B, H, C, L, dk).cumsum(3)
    qt, kt = q * b.exp(), k * (-b).exp()
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    intra = ((qt @ kt.transpose(-1, -2)).masked_fill(~mask, 0)) @ v  # [B,H,C,L,dv]
    last = b[:, :, :, -1:, :]  # the chunk's total log decay
    chunk_kv = (k * (last - b).exp()).transpose(-1, -2) @ v  # [B,H,C,dk,dv]
    S = q.new_zeros(B, H, dk, dv)
    outs = []
    for c in range(C):
        outs.append(intra[:, :, c] + qt[:, :, c] @ S)
        S = S * last[:, :, c, 0, :, None].exp() + chunk_kv[:, :, c]
    return torch.stack(outs, 2).reshape(B, H, T, dv)


def time_fwd_bwd(fn, inputs, repeats):
    samples = []
    for _ in range(repeats + 1):
        xs = [x.detach().requires_grad_() if x is not None else None for x in inputs]
        start = time.perf_counter()
        out = fn(*xs)
        out.backward(torch.ones_like(out))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:]), min(samples[1:])  # the first call warms up


def causal_comparison(B, H, T, d, repeats):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, T, d, generator=g) / d ** 0.5 for _ in range(3))
    rows = []
    for decay_name in ("none", "GLA (per channel)"):
        a = None if decay_name == "none" else torch.nn.functional.logsigmoid(torch.randn(B, H, T, d, generator=g)) / 16
        impls = {
            "linattn.torch": lambda q, k, v, a: lt.causal_linear_attention(q, k, v, a),
            "PyTorch chunked": lambda q, k, v, a: torch_chunked(q, k, v, a),
            "PyTorch naive (recurrence)": lambda q, k, v, a: torch_recurrent(q, k, v, a),
        }
        reference = None
        for name, fn in impls.items():
            out = fn(q, k, v, a).detach()
            if reference is None:
                reference = out
            err = float((out - reference).abs().max() / reference.abs().max())
            med, best = time_fwd_bwd(fn, [q, k, v, a], repeats if "naive" not in name else max(2, repeats // 3))
            rows.append({"decay": decay_name, "implementation": name, "median_ms": med * 1e3, "min_ms": best * 1e3,
                         "max_rel_diff_vs_linattn": err})
    return rows


BLAS_CHOICES = {"reference BLAS (Debian's default libblas.so.3)": None,
                "OpenBLAS (libopenblas0-pthread)": "/usr/lib/x86_64-linux-gnu/openblas-pthread"}


def causal_in_subprocesses(args):
    runs = []
    for blas, libdir in BLAS_CHOICES.items():
        if libdir is not None and not os.path.exists(os.path.join(libdir, "libblas.so.3")):
            print(f"  {blas}: not installed, skipped", flush=True)
            continue
        env = dict(os.environ)
        if libdir:
            env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        print(f"  with {blas} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--causal-only", "--threads", str(args.threads), "--shape",
                              args.shape, "--repeats", str(args.repeats)], env=env, check=True, capture_output=True,
                             text=True)
        runs.append({"blas": blas, **json.loads(out.stdout)})
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/bench/python", help="writes OUT.json and OUT.md")
    ap.add_argument("--micro", default="build/bin/linattn_micro_benchmarks", help="the C++ micro benchmark binary")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads for the causal runs")
    ap.add_argument("--shape", default="4,8,1024,64", help="B,H,T,d of the causal comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--causal-only", action="store_true", help=argparse.SUPPRESS)  # one BLAS, JSON on stdout
    args = ap.parse_args()
    B, H, T, d = map(int, args.shape.split(","))
    if args.causal_only:
        linattn.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
        x = torch.randn(1024, 1024)
        gemm = median_ns_per_call(lambda: x @ x, 5, repeats=3)[0]
        json.dump({"torch_gemm_1024_gflops": 2 * 1024 ** 3 / gemm, "rows": causal_comparison(B, H, T, d, args.repeats)},
                  sys.stdout)
        return

    # Single lookups on one thread, as the C++ benchmark runs them.
    linattn.set_num_threads(1)
    torch.set_num_threads(1)
    print("single lookups: C++ (linattn_micro_benchmarks) ...", flush=True)
    cxx = cxx_single_lookups(args.micro)
    print("single lookups: Python ...", flush=True)
    py = python_single_lookups(sorted(cxx))
    floor_ns = median_ns_per_call(linattn.num_threads, 200_000)[0]
    rng = np.random.default_rng(1)
    live = linattn.Memory(128)
    h = rng.standard_normal((64, 128)).astype(np.float32)
    live.write(h, h)
    q = h[0].copy()
    live_ns = median_ns_per_call(lambda: live.lookup(q), 100_000)[0]

    lookups = []
    for key in sorted(cxx):
        width, bf16, packed = key
        lookups.append({"d": width, "dtype": "bf16" if bf16 else "f32", "layout": "packed" if packed else "full",
                        "cxx_ns": cxx[key], "python_ns": py[key], "overhead_ns": py[key] - cxx[key]})
    goal = next(r for r in lookups if r["d"] == 128 and r["dtype"] == "f32" and r["layout"] == "full")

    print(f"causal forward+backward, B={B} H={H} T={T} d={d}, {args.threads} threads ...", flush=True)
    causal = causal_in_subprocesses(args)

    result = {
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "numpy": np.__version__, "torch": torch.__version__},
        "single_lookup": lookups, "call_floor_ns": floor_ns, "live_memory_lookup_d128_ns": live_ns,
        "goals": [{"goal": "single lookup overhead at d = 128 (f32, full) <= 2 us", "value_ns": goal["overhead_ns"],
                   "met": goal["overhead_ns"] <= 2000}],
        "causal": {"shape": {"B": B, "H": H, "T": T, "d": d}, "threads": args.threads, "runs": causal},
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)

    md = ["# Python bindings: measured", "",
          f"`make bench-python` on {result['machine']['processor']} ({os.cpu_count()} CPUs), Python "
          f"{result['machine']['python']}, NumPy {np.__version__}, PyTorch {torch.__version__}.", "",
          "## One query against a stored memory (one thread)", "",
          "| d | dtype | layout | C++ (ns) | Python (ns) | overhead (ns) |", "|---|---|---|---|---|---|"]
    for r in lookups:
        md.append(f"| {r['d']} | {r['dtype']} | {r['layout']} | {r['cxx_ns']:.0f} | {r['python_ns']:.0f} | "
                  f"{r['overhead_ns']:.0f} |")
    md += ["", f"The floor of any call into the extension (`linattn.num_threads()`): {floor_ns:.0f} ns. A live "
           f"`Memory.lookup` at d = 128: {live_ns:.0f} ns.",
           f"Goal: overhead <= 2 us at d = 128 (f32, full): {goal['overhead_ns']:.0f} ns, "
           f"{'met' if goal['overhead_ns'] <= 2000 else 'not met'}.", "",
           f"## Causal linear attention, forward+backward (B={B}, H={H}, T={T}, d={d}, {args.threads} threads)", "",
           "PyTorch's products go through libblas.so.3; each BLAS found ran in a process of its own. linattn's "
           "kernels do not use it (oneDNN and libxsmm). PyTorch's own 1024 x 1024 x 1024 product, for scale: " +
           ", ".join(f"{r['torch_gemm_1024_gflops']:.1f} GFLOP/s with {r['blas']}" for r in causal) + ".", "",
           "| BLAS | decay | implementation | median (ms) | min (ms) | vs linattn | max rel. diff |",
           "|---|---|---|---|---|---|---|"]
    for run in causal:
        ours = {r["decay"]: r["median_ms"] for r in run["rows"] if r["implementation"] == "linattn.torch"}
        for r in run["rows"]:
            md.append(f"| {run['blas']} | {r['decay']} | {r['implementation']} | {r['median_ms']:.1f} | "
                      f"{r['min_ms']:.1f} | {r['median_ms'] / ours[r['decay']]:.1f}x | "
                      f"{r['max_rel_diff_vs_linattn']:.1e} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
