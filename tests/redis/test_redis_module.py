"""linattn_redis.so in a real redis-server: every command against the core library (the linattn
Python package), the errors, persistence (RDB and AOF), DUMP/RESTORE, replication and ACLs."""
import time

import numpy as np
import pytest
import redis

import linattn


def blob(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def rows(b, cols):
    return np.frombuffer(b, dtype="<f4").reshape(-1, cols)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


CONFIGS = [
    dict(args=["DK", 16, "SYMMETRIC"], memory=dict(dk=16, symmetric=True)),
    dict(args=["DK", 16, "SYMMETRIC", "DTYPE", "bf16"], memory=dict(dk=16, symmetric=True, dtype="bf16")),
    dict(args=["DK", 12, "DV", 8], memory=dict(dk=12, dv=8)),
    dict(args=["DK", 12, "DV", 8, "NORMALIZE", "FEATURE_MAP", "elu+1"],
         memory=dict(dk=12, dv=8, normalize=True, feature_map="elu+1")),
    dict(args=["DK", 8, "GATED"], memory=dict(dk=8, gated=True)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: " ".join(map(str, c["args"])))
def test_commands_answer_like_the_core_library(nodes, rng, config):
    r = nodes().client()
    assert r.execute_command("LA.CREATE", "doc", *config["args"]) == b"OK"
    mc = config["memory"]
    dk, dv = mc["dk"], mc.get("dv", mc["dk"])
    mem = linattn.Memory(dk, dv if "dv" in mc else None, symmetric=mc.get("symmetric", False),
                         normalize=mc.get("normalize", False), feature_map=mc.get("feature_map", "identity"),
                         gated=mc.get("gated", False), dtype=mc.get("dtype", "f32"))
    tokens = 0
    for t in (5, 1, 9):  # streaming: three writes
        k = rng.standard_normal((t, dk), dtype=np.float32)
        args = ["KEYS", blob(k)]
        v = g = None
        if "dv" in mc:
            v = rng.standard_normal((t, dv), dtype=np.float32)
            args += ["VALUES", blob(v)]
        if mc.get("gated"):
            g = rng.uniform(0, 1, t).astype(np.float32)
            args += ["GATES", blob(g)]
        tokens += t
        assert r.execute_command("LA.WRITE", "doc", *args) == tokens
        if mc.get("symmetric"):
            mem.write(k)
        else:
            mem.write(k, k if v is None else v, g)  # without VALUES the keys are the values
    # The stored form is the core's, byte for byte, so LOOKUP equals `linattn lookup` of EXPORT.
    exported = r.execute_command("LA.EXPORT", "doc")
    view = linattn.MemoryView.from_bytes(exported)
    q = rng.standard_normal((4, dk), dtype=np.float32)
    got = rows(r.execute_command("LA.LOOKUP", "doc", "QUERIES", blob(q)), dv)
    np.testing.assert_array_equal(got, view.lookup(q))
    # And equals a Memory written in one go, to float rounding (bf16 storage rounds per write).
    tol = 2e-2 if mc.get("dtype") == "bf16" else 1e-4
    np.testing.assert_allclose(got, mem.lookup(q), rtol=tol, atol=tol * np.abs(mem.lookup(q)).max())
    if not mc.get("normalize"):
        scaled = rows(r.execute_command("LA.LOOKUP", "doc", "QUERIES", blob(q), "MEAN", "SCALE", 1000), dv)
        np.testing.assert_array_equal(scaled, view.lookup(q, mean=True, scale=1000))
    info = dict(zip(*[iter(r.execute_command("LA.INFO", "doc"))] * 2))
    assert info[b"tokens"] == tokens and info[b"key_dim"] == dk and info[b"value_dim"] == dv
    assert info[b"bytes"] == len(exported)
    # Zero queries: an empty answer.
    assert r.execute_command("LA.LOOKUP", "doc", "QUERIES", b"") == b""


def test_mlookup_merge_decay_import_export(nodes, rng):
    r = nodes().client()
    h = {name: rng.standard_normal((6, 8), dtype=np.float32) for name in ("{d}a", "{d}b", "{d}c")}
    for name, x in h.items():
        r.execute_command("LA.CREATE", name, "DK", 8, "SYMMETRIC")
        r.execute_command("LA.WRITE", name, "KEYS", blob(x))
    q = rng.standard_normal((3, 8), dtype=np.float32)
    answers = r.execute_command("LA.MLOOKUP", "QUERIES", blob(q), "KEYS", *h)
    for name, a in zip(h, answers):
        np.testing.assert_array_equal(rows(a, 8), linattn.MemoryView.from_bytes(r.execute_command("LA.EXPORT", name)).lookup(q))
    assert r.execute_command("LA.MERGE", "{d}a", "{d}b", "{d}c") == 18
    both = linattn.Memory(8, symmetric=True)
    for x in h.values():
        both.write(x)
    np.testing.assert_allclose(rows(r.execute_command("LA.LOOKUP", "{d}a", "QUERIES", blob(q)), 8), both.lookup(q),
                               rtol=1e-5, atol=1e-4)
    assert r.execute_command("LA.DECAY", "{d}a", 0.5) == b"OK"
    np.testing.assert_allclose(rows(r.execute_command("LA.LOOKUP", "{d}a", "QUERIES", blob(q)), 8), 0.5 * both.lookup(q),
                               rtol=1e-5, atol=1e-4)
    # A .lam file made by the core imports and exports byte for byte.
    m = linattn.Memory(8, symmetric=True, dtype="bf16")
    m.write(h["{d}b"])
    assert r.execute_command("LA.IMPORT", "file", m.to_bytes()) == b"OK"
    assert r.execute_command("LA.EXPORT", "file") == m.to_bytes()
    with pytest.raises(redis.ResponseError, match="exists"):
        r.execute_command("LA.IMPORT", "file", m.to_bytes())
    assert r.execute_command("LA.IMPORT", "file", m.to_bytes(), "REPLACE") == b"OK"


def test_bad_input_gets_a_redis_error_never_a_crash(nodes, rng):
    node = nodes()
    r = node.client()
    r.execute_command("LA.CREATE", "m", "DK", 8, "SYMMETRIC")
    r.execute_command("LA.WRITE", "m", "KEYS", blob(rng.standard_normal((3, 8))))
    r.set("plain", "x")
    exported = bytearray(r.execute_command("LA.EXPORT", "m"))
    exported[200] ^= 0x01  # one bit of the stored numbers
    flipped = bytes(exported)
    bad = [
        (["LA.CREATE"], "wrong number"),
        (["LA.CREATE", "x"], "DK is required"),
        (["LA.CREATE", "x", "DK", 0], "DK must be"),
        (["LA.CREATE", "x", "DK", 5000], "DK must be"),
        (["LA.CREATE", "x", "DK", 8, "COLOR", "red"], "unknown or incomplete option"),
        (["LA.CREATE", "x", "DK", 8, "DTYPE", "f64"], "unknown DTYPE"),
        (["LA.CREATE", "x", "DK", 8, "DV", 4, "SYMMETRIC"], "symmetric"),
        (["LA.CREATE", "m", "DK", 8], "exists"),
        (["LA.WRITE", "m", "KEYS", b"abc"], "not a whole number of rows"),
        (["LA.WRITE", "m", "KEYS", blob(np.full((1, 8), np.nan))], "non-finite"),
        (["LA.WRITE", "m", "KEYS", blob(np.ones((1, 8))), "VALUES", blob(np.ones((1, 8)))], "SYMMETRIC"),
        (["LA.WRITE", "m", "KEYS", blob(np.ones((1, 8))), "GATES", blob(np.ones(1))], "GATED"),
        (["LA.WRITE", "m", "STUFF", b""], "unknown option"),
        (["LA.WRITE", "nokey", "KEYS", blob(np.ones((1, 8)))], "no memory at key"),
        (["LA.WRITE", "plain", "KEYS", blob(np.ones((1, 8)))], "WRONGTYPE"),
        (["LA.LOOKUP", "m", "QUERIES", b"12345"], "not a whole number of rows"),
        (["LA.LOOKUP", "m", "QUERIES", blob(np.ones((1, 8))), "SCALE", "inf"], "SCALE"),
        (["LA.LOOKUP", "m", "QUERIES", blob(np.ones((1, 8))), "SCALE"], "incomplete"),
        (["LA.LOOKUP", "m", "QUERIES", blob(np.full((1, 8), 3e37))], "overflow"),
        (["LA.DECAY", "m", 1.5], "gamma"),
        (["LA.IMPORT", "y", b"not a memory"], "LA.IMPORT payload"),
        (["LA.IMPORT", "y", flipped], "checksum"),
        (["LA.MLOOKUP", "QUERIES", blob(np.ones((1, 8))), "KEYS"], "wrong number"),
        (["LA.MERGE", "m", "plain"], "WRONGTYPE"),
    ]
    for args, words in bad:
        with pytest.raises(redis.ResponseError, match=words):
            r.execute_command(*args)
    # A corrupted RESTORE payload (checksum of the .lam bytes inside broken) is refused.
    dump = bytearray(r.dump("m"))
    dump[40] ^= 0xFF
    with pytest.raises(redis.ResponseError):
        r.restore("m2", 0, bytes(dump))
    assert r.ping()  # the server lived through all of it
    assert r.dbsize() == 2


def test_rdb_and_aof_restarts_restore_every_memory(nodes, rng):
    for mode in ("rdb", "aof"):
        node = nodes(mode, *(["--appendonly", "yes", "--appendfsync", "always"] if mode == "aof" else []))
        r = node.client()
        exported = {}
        for i in range(5):
            name = f"doc{i}"
            r.execute_command("LA.CREATE", name, "DK", 16, "SYMMETRIC", *(["DTYPE", "bf16"] if i % 2 else []))
            r.execute_command("LA.WRITE", name, "KEYS", blob(rng.standard_normal((7, 16))))
            exported[name] = r.execute_command("LA.EXPORT", name)
        if mode == "rdb":
            r.save()
        else:
            r.bgrewriteaof()
            time.sleep(0.5)
            r.execute_command("LA.WRITE", "doc0", "KEYS", blob(rng.standard_normal((2, 16))))  # after the rewrite
            exported["doc0"] = r.execute_command("LA.EXPORT", "doc0")
        node.kill9()
        if mode == "rdb":
            node.args = ["--dbfilename", "dump.rdb"]
        node.start()
        r = node.client()
        for name, b in exported.items():
            assert r.execute_command("LA.EXPORT", name) == b, (mode, name)


def test_dump_restore_and_memory_usage(nodes, rng):
    r = nodes().client()
    r.execute_command("LA.CREATE", "m", "DK", 128, "SYMMETRIC")
    r.execute_command("LA.WRITE", "m", "KEYS", blob(rng.standard_normal((64, 128))))
    r.restore("copy", 0, r.dump("m"))
    assert r.execute_command("LA.EXPORT", "copy") == r.execute_command("LA.EXPORT", "m")
    payload = len(r.execute_command("LA.EXPORT", "m"))
    usage = r.memory_usage("m")
    assert payload <= usage <= 1.1 * payload, (usage, payload)


def test_writes_replicate(nodes, rng):
    # No diskless-sync delay (5 s by default): the first sync starts at once.
    primary = nodes("primary", "--repl-diskless-sync-delay", "0")
    replica = nodes("replica", "--replicaof", "127.0.0.1", str(primary.port))
    p, s = primary.client(), replica.client()
    # A replica counts as connected while its first sync is still running; WAIT only counts it
    # once the link is up (a loaded 2-core machine once took longer than WAIT's 5 s for that).
    deadline = time.time() + 30
    while s.info("replication").get("master_link_status") != "up" and time.time() < deadline:
        time.sleep(0.05)
    assert s.info("replication").get("master_link_status") == "up", s.info("replication")
    p.execute_command("LA.CREATE", "m", "DK", 8, "SYMMETRIC")
    for _ in range(3):
        p.execute_command("LA.WRITE", "m", "KEYS", blob(rng.standard_normal((4, 8))))
    assert p.execute_command("WAIT", 1, 5000) == 1
    assert s.execute_command("LA.EXPORT", "m") == p.execute_command("LA.EXPORT", "m")


def test_acl_read_only_keys_and_denied_commands(nodes, rng):
    r = nodes().client()
    r.execute_command("LA.CREATE", "m", "DK", 8, "SYMMETRIC")
    r.execute_command("LA.WRITE", "m", "KEYS", blob(rng.standard_normal((3, 8))))
    # Read-only key access (%R~): the key specs mark LA.WRITE as writing its key.
    r.execute_command("ACL", "SETUSER", "reader", "on", ">secret-reader", "+@all", "%R~*")
    r.execute_command("ACL", "SETUSER", "nowrite", "on", ">secret-nowrite", "+@all", "~*", "-la.write")
    reader = redis.Redis(host="127.0.0.1", port=r.connection_pool.connection_kwargs["port"], username="reader", password="secret-reader")
    q = blob(np.ones((1, 8)))
    assert reader.execute_command("LA.LOOKUP", "m", "QUERIES", q)
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.execute_command("LA.WRITE", "m", "KEYS", q)
    nowrite = redis.Redis(host="127.0.0.1", port=r.connection_pool.connection_kwargs["port"], username="nowrite", password="secret-nowrite")
    with pytest.raises(redis.exceptions.NoPermissionError):
        nowrite.execute_command("LA.WRITE", "m", "KEYS", q)
    assert nowrite.execute_command("LA.LOOKUP", "m", "QUERIES", q)


def test_the_cpp_example_runs(nodes):
    import os
    import subprocess
    example = os.environ.get("LINATTN_REDIS_EXAMPLE")
    if not example:
        pytest.skip("LINATTN_REDIS_EXAMPLE unset")
    node = nodes()
    out = subprocess.run([example, "--port", str(node.port)], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    assert "tokens: 2" in out
    assert "lookup of e1: 1.25 0.25 0 0" in out, out


def test_memories_count_in_used_memory_and_maxmemory_refuses_past_it(nodes, rng):
    # The stored bytes come from Redis's allocator: INFO sees them, DEL gives them back, and
    # maxmemory refuses new memories instead of letting the node grow past it.
    r = nodes().client()
    before = r.info("memory")["used_memory"]
    for i in range(8):
        r.execute_command("LA.CREATE", f"big{i}", "DK", 128, "DV", 128)  # 64 KiB of state each
    grown = r.info("memory")["used_memory"] - before
    assert grown >= 8 * 128 * 128 * 4, grown
    assert grown <= 8 * 128 * 128 * 4 * 1.1, grown
    r.delete(*[f"big{i}" for i in range(8)])
    assert r.info("memory")["used_memory"] - before < 8 * 128 * 128 * 4 / 4
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", r.info("memory")["used_memory"] + 200_000)
    refused = None
    for i in range(10):
        try:
            r.execute_command("LA.CREATE", f"big{i}", "DK", 128, "DV", 128)
        except redis.exceptions.ResponseError as e:  # redis-py maps OOM to a ResponseError
            refused = (i, str(e))
            break
    assert refused is not None and "OOM" in refused[1] and 3 <= refused[0] <= 5, refused
    assert r.execute_command("LA.LOOKUP", "big0", "QUERIES", blob(np.ones(128))) == blob(np.zeros(128))


def test_the_benchmark_client_measures_each_request_kind(nodes, rng):
    # bench/redis/pipelined_client.cc: what `make bench-redis` reads, on a short run.
    import json
    import os
    import subprocess
    client = os.environ.get("LINATTN_REDIS_CLIENT")
    if not client:
        pytest.skip("LINATTN_REDIS_CLIENT unset")
    node = nodes()
    r = node.client()
    r.execute_command("LA.CREATE", "m", "DK", 16, "DV", 8)
    r.execute_command("LA.WRITE", "m", "KEYS", blob(rng.standard_normal((4, 16))), "VALUES",
                      blob(rng.standard_normal((4, 8))))
    r.set("state", r.execute_command("LA.EXPORT", "m"))
    r.set("small", b"x" * 32)

    def run(*args):
        return subprocess.run([client, "--target", f"{node.port}={args[0]}", "--mode", args[1], "--dk", "16",
                               "--pipeline", "4", "--seconds", "0.2"], capture_output=True, text=True, timeout=60)
    for key, mode, reply in [("m", "lookup", 32), ("small", "get", 32), ("state", "get-state", len(r.get("state")))]:
        p = run(key, mode)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["requests"] > 0 and out["requests"] % 4 == 0 and out["reply_bytes"] == reply, out
        assert 0 < out["p50_us"] <= out["p99_us"]
    p = run("small", "lookup")  # a plain string is not a memory: the client stops with Redis's error
    assert p.returncode == 1 and "WRONGTYPE" in p.stderr, p.stderr
    p = run("missing", "get")
    assert p.returncode == 1 and "unexpected reply" in p.stderr, p.stderr
