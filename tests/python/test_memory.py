"""linattn.Memory, MemoryView, Bank, files and compression from Python."""
import gc
import os
import resource
import subprocess
import threading

import numpy as np
import pytest

import linattn
from conftest import rows


def reference_lookup(keys, values, queries, gates=None, mean=False, scale=1.0):
    g = np.ones(len(keys)) if gates is None else gates.astype(np.float64)
    M = (keys.astype(np.float64) * g[:, None]).T @ values.astype(np.float64)
    r = scale * queries.astype(np.float64) @ M
    return r / len(keys) if mean else r


# --- Memory -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dk,dv", [(1, 1), (5, 3), (16, 16), (33, 17), (128, 128)])
def test_lookup_equals_the_formula(rng, dk, dv):
    k, v, q = rows(rng, 40, dk), rows(rng, 40, dv), rows(rng, 7, dk)
    m = linattn.Memory(dk, dv)
    m.write(k[:13], v[:13])
    m.write(k[13:], v[13:])  # in pieces equals at once
    np.testing.assert_allclose(m.lookup(q), reference_lookup(k, v, q), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.lookup(q, mean=True, scale=1000), reference_lookup(k, v, q, mean=True, scale=1000),
                               rtol=1e-4, atol=1e-3)
    assert m.tokens == 40 and m.key_dim == dk and m.value_dim == dv


def test_single_query_returns_a_vector(rng):
    m = linattn.Memory(8, 3)
    m.write(rows(rng, 4, 8), rows(rng, 4, 3))
    q = rows(rng, 8)
    r = m.lookup(q)
    assert r.shape == (3,) and r.dtype == np.float32
    np.testing.assert_allclose(r, m.lookup(q[None])[0], rtol=1e-6)


def test_symmetric_gated_and_state(rng):
    h, g = rows(rng, 20, 6), rng.random(20).astype(np.float32)
    m = linattn.Memory(6, symmetric=True, gated=True)
    m.write(h, gates=g)
    expected = (h.astype(np.float64) * g[:, None]).T @ h
    np.testing.assert_allclose(m.state, expected, rtol=1e-5, atol=1e-5)
    assert m.normalizer is None and m.symmetric and m.gated


def test_normalized_elu_memory(rng):
    k, v, q = rows(rng, 30, 4), rows(rng, 30, 5), rows(rng, 3, 4)
    m = linattn.Memory(4, 5, normalize=True, feature_map="elu+1")
    m.write(k, v)
    phi = lambda x: np.where(x > 0, x + 1, np.exp(x)).astype(np.float64)  # noqa: E731
    M, z = phi(k).T @ v, phi(k).sum(0)
    expected = (phi(q) @ M) / (phi(q) @ z + 1e-6)[:, None]
    np.testing.assert_allclose(m.lookup(q), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.normalizer, z, rtol=1e-5)


def test_inputs_of_any_real_dtype_and_layout_are_converted(rng):
    k = rng.standard_normal((10, 4))  # float64
    made = []
    for keys in (k, np.asfortranarray(k), k[:, ::-1][:, ::-1], k.tolist(), k.astype(np.float16)):
        m = linattn.Memory(4, symmetric=True)
        m.write(keys)
        made.append(m)
    for other in made[1:4]:
        np.testing.assert_allclose(other.state, made[0].state, rtol=1e-6)
    np.testing.assert_allclose(made[4].state, made[0].state, rtol=1e-2, atol=1e-2)
    ints = linattn.Memory(4, symmetric=True)
    ints.write(np.arange(40).reshape(10, 4))
    assert ints.tokens == 10


def test_merge_decay_snapshot_restore_reset(rng):
    k, v = rows(rng, 30, 4), rows(rng, 30, 4)
    whole, a, b = linattn.Memory(4), linattn.Memory(4), linattn.Memory(4)
    whole.write(k, v)
    a.write(k[:10], v[:10])
    b.write(k[10:], v[10:])
    a.merge(b)
    np.testing.assert_allclose(a.state, whole.state, rtol=1e-5, atol=1e-5)
    assert a.tokens == 30
    snap = a.snapshot()
    a.decay(0.5)
    np.testing.assert_allclose(a.state, whole.state * 0.5, rtol=1e-5, atol=1e-5)
    a.restore(snap)
    np.testing.assert_allclose(a.state, whole.state, rtol=1e-5, atol=1e-5)
    a.merge(a)  # with itself: doubles
    np.testing.assert_allclose(a.state, whole.state * 2, rtol=1e-5, atol=1e-5)
    a.reset()
    assert a.tokens == 0 and not a.state.any()


def test_empty_memory_and_empty_queries():
    m = linattn.Memory(4)
    assert not m.lookup(np.ones(4)).any()
    assert not m.lookup(np.ones(4), mean=True).any()
    assert m.lookup(np.zeros((0, 4), np.float32)).shape == (0, 4)
    m.write(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))
    assert m.tokens == 0


def test_argument_errors_name_the_argument(rng):
    m = linattn.Memory(4, 3)
    with pytest.raises(linattn.ArgumentError, match="'keys'.*dk is 4"):
        m.write(rows(rng, 2, 5), rows(rng, 2, 3))
    with pytest.raises(linattn.ArgumentError, match="'values'"):
        m.write(rows(rng, 2, 4))
    with pytest.raises(linattn.ArgumentError, match="'keys': expected 2 dimensions"):
        m.write(rows(rng, 4), rows(rng, 4, 3))
    with pytest.raises(linattn.ArgumentError, match="'queries'"):
        m.lookup(rows(rng, 2, 3))
    with pytest.raises(linattn.ArgumentError, match="'queries': is required"):
        m.lookup(None)
    with pytest.raises(linattn.ArgumentError, match="gamma"):
        m.decay(1.5)
    with pytest.raises(linattn.ArgumentError, match="feature_map"):
        linattn.Memory(4, feature_map="tanh")
    with pytest.raises(linattn.ArgumentError, match="dtype"):
        linattn.Memory(4, dtype="f16")
    with pytest.raises(linattn.ArgumentError, match="key_dim"):
        linattn.Memory(0)
    with pytest.raises(linattn.ArgumentError, match="symmetric"):
        linattn.Memory(4, 3, symmetric=True)
    with pytest.raises(linattn.ArgumentError, match="other"):
        m.merge(linattn.Memory(4, 4))
    with pytest.raises(TypeError, match="'keys': expected real numbers"):
        m.write(np.zeros((2, 4), bool), rows(rng, 2, 3))
    with pytest.raises(TypeError, match="'keys'"):
        m.write("not numbers")
    with pytest.raises(TypeError, match="'keys'"):
        m.write(np.zeros((2, 4), np.complex64))
    # linattn's errors are the built-in kinds too.
    assert issubclass(linattn.ArgumentError, ValueError) and issubclass(linattn.ArgumentError, linattn.Error)
    assert issubclass(linattn.FormatError, OSError) and issubclass(linattn.FormatError, linattn.Error)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 3e38])
def test_non_finite_or_overflowing_writes_leave_the_memory_unchanged(rng, bad):
    m = linattn.Memory(4)
    k = rows(rng, 3, 4)
    m.write(k, k)
    before = m.state
    k2 = k.copy()
    k2[1, 2] = bad
    with pytest.raises(linattn.ArgumentError):
        m.write(k2, k2)
    np.testing.assert_array_equal(m.state, before)
    assert m.tokens == 3


# --- files ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["f32", "bf16"])
@pytest.mark.parametrize("symmetric", [False, True])
def test_save_and_open(tmp_path, rng, dtype, symmetric):
    h = rows(rng, 50, 16)
    m = linattn.Memory(16, symmetric=symmetric, dtype=dtype)
    m.write(h) if symmetric else m.write(h, h)
    path = str(tmp_path / "doc.lam")
    m.save(path)
    view = linattn.open_memory(path)
    assert view.tokens == 50 and view.dtype == dtype
    assert view.layout == ("packed-symmetric" if symmetric else "full")
    q = rows(rng, 5, 16)
    tol = 1e-5 if dtype == "f32" else 1e-2
    np.testing.assert_allclose(view.lookup(q), m.lookup(q), rtol=tol, atol=tol * np.abs(m.lookup(q)).max())
    assert linattn.MemoryView.from_bytes(m.to_bytes()).tokens == 50
    back = view.to_memory()
    assert back.tokens == 50 and back.symmetric == symmetric


def test_corrupted_truncated_and_special_files(tmp_path, rng):
    m = linattn.Memory(8)
    k = rows(rng, 4, 8)
    m.write(k, k)
    path = tmp_path / "doc.lam"
    m.save(str(path))
    data = path.read_bytes()
    (tmp_path / "truncated.lam").write_bytes(data[:100])
    flipped = bytearray(data)
    flipped[200] ^= 1
    (tmp_path / "flipped.lam").write_bytes(bytes(flipped))
    (tmp_path / "empty.lam").write_bytes(b"")
    for name in ("truncated.lam", "flipped.lam", "empty.lam"):
        with pytest.raises(linattn.FormatError):
            linattn.open_memory(str(tmp_path / name))
    with pytest.raises(linattn.FormatError):
        linattn.open_memory(str(tmp_path))  # a directory
    with pytest.raises(linattn.FormatError):
        linattn.open_memory("/dev/null")
    with pytest.raises(linattn.FormatError):
        linattn.MemoryView.from_bytes(data[:-1])
    with pytest.raises(linattn.FormatError):
        m.save(str(tmp_path / "no-such-dir" / "x.lam"))


def test_files_from_python_are_read_by_the_cli_and_back(tmp_path, rng, cli):
    h, q = rows(rng, 30, 12), rows(rng, 4, 12)
    m = linattn.Memory(12, symmetric=True)
    m.write(h)
    m.save(str(tmp_path / "py.lam"))
    np.save(tmp_path / "q.npy", q)
    subprocess.run([cli, "lookup", str(tmp_path / "py.lam"), "--queries", str(tmp_path / "q.npy"),
                    "-o", str(tmp_path / "r.npy")], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), m.lookup(q), rtol=1e-5, atol=1e-5)
    # The CLI encodes; Python reads.
    np.save(tmp_path / "h.npy", h)
    subprocess.run([cli, "encode", "--keys", str(tmp_path / "h.npy"), "--dtype", "bf16", "-o",
                    str(tmp_path / "cli.lam")], check=True)
    view = linattn.open_memory(str(tmp_path / "cli.lam"))
    assert view.dtype == "bf16" and view.tokens == 30
    np.testing.assert_allclose(view.lookup(q), m.lookup(q), rtol=2e-2, atol=2e-2 * np.abs(m.lookup(q)).max())
    # A bank made in Python, listed by the CLI.
    bank = linattn.Bank.create(str(tmp_path / "docs.lamb"))
    bank.append("doc-a", m)
    out = subprocess.run([cli, "bank", "list", str(tmp_path / "docs.lamb")], check=True, capture_output=True, text=True)
    assert "doc-a" in out.stdout


# --- compression ------------------------------------------------------------------------------------------------

def test_compress_by_rank_and_error(tmp_path, rng):
    basis = rows(rng, 3, 16)
    h = rows(rng, 100, 3) @ basis  # rank 3
    m = linattn.Memory(16, symmetric=True)
    m.write(h)
    c = linattn.compress(m, rank=3)
    assert c.layout == "low-rank" and c.rank == 3 and c.compression_error < 1e-3
    q = rows(rng, 4, 16)
    np.testing.assert_allclose(c.lookup(q), m.lookup(q), rtol=1e-3, atol=1e-3 * np.abs(m.lookup(q)).max())
    c2 = linattn.compress(m, max_error=0.01)
    assert c2.rank <= 3
    c.save(str(tmp_path / "small.lam"))
    assert linattn.open_memory(str(tmp_path / "small.lam")).rank == 3
    with pytest.raises(linattn.ArgumentError, match="exactly one"):
        linattn.compress(m)
    with pytest.raises(linattn.ArgumentError):
        linattn.compress(linattn.Memory(4, 3), rank=1)
    with pytest.raises(linattn.ArgumentError):
        c.to_memory()


# --- banks ------------------------------------------------------------------------------------------------------

def test_bank_append_lookup_and_reload(tmp_path, rng):
    path = str(tmp_path / "docs.lamb")
    bank = linattn.Bank.create(path)
    mems = {}
    for i in range(5):
        m = linattn.Memory(8, symmetric=True, dtype="bf16" if i % 2 else "f32")
        m.write(rows(rng, 10 + i, 8))
        mems[f"doc-{i}"] = m
    bank.append("doc-0", mems["doc-0"])
    bank.append_all({n: m for n, m in mems.items() if n != "doc-0"})
    assert len(bank) == 5 and bank.names == list(mems) and "doc-3" in bank
    q = rows(rng, 3, 8)
    every = bank.lookup(q)
    assert every.shape == (5, 3, 8)
    for i, (name, m) in enumerate(mems.items()):
        tol = 1e-5 if i % 2 == 0 else 2e-2
        np.testing.assert_allclose(every[i], m.lookup(q), rtol=tol, atol=tol * np.abs(m.lookup(q)).max())
        np.testing.assert_allclose(bank[name].lookup(q), every[i], rtol=1e-6)
    some = bank.lookup(q[0], ["doc-4", 1])
    assert some.shape == (2, 8)
    np.testing.assert_allclose(some[0], every[4, 0], rtol=1e-6)
    np.testing.assert_allclose(some[1], every[1, 0], rtol=1e-6)
    with pytest.raises(linattn.ArgumentError, match="doc-9"):
        bank.lookup(q, ["doc-9"])
    with pytest.raises(linattn.ArgumentError, match="selection"):
        bank.lookup(q, [7])
    with pytest.raises(linattn.ArgumentError):
        bank.append("doc-1", mems["doc-1"])  # names are unique
    with pytest.raises(KeyError):
        bank["nope"]
    with pytest.raises(linattn.FormatError):
        linattn.Bank.create(path)  # never replaces a bank
    # Another handle appends; this one sees it after reload.
    other = linattn.Bank.open(path)
    other.append("late", mems["doc-0"])
    assert len(bank) == 5
    bank.reload()
    assert bank.names[-1] == "late"
    with pytest.raises(linattn.ArgumentError, match="width|dk"):
        bank.append("wide", linattn.Memory(4))


def test_a_corrupted_bank_is_refused(tmp_path, rng):
    path = tmp_path / "docs.lamb"
    bank = linattn.Bank.create(str(path))
    m = linattn.Memory(8)
    m.write(rows(rng, 3, 8), rows(rng, 3, 8))
    bank.append("a", m)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(linattn.FormatError, match="a|entry"):
        linattn.Bank.open(str(path))


# --- threads and leaks ------------------------------------------------------------------------------------------

def test_concurrent_lookups_and_writes(rng):
    d = 32
    m = linattn.Memory(d)
    k = rows(rng, 64, d)
    m.write(k, k)
    q = rows(rng, 16, d)
    expected = m.lookup(q)
    errors = []

    def reader():
        try:
            for _ in range(300):
                np.testing.assert_allclose(m.lookup(q), expected, rtol=1e-5, atol=1e-4)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Writers and readers together: every result is a state of the memory after a whole number
    # of writes (a write is never seen half done).
    m.reset()
    unit = np.eye(d, dtype=np.float32)[:1]
    seen = []

    def writer():
        for _ in range(200):
            m.write(unit, unit)

    def watcher():
        for _ in range(200):
            seen.append(float(m.lookup(unit[0])[0]))

    ts = [threading.Thread(target=writer), threading.Thread(target=watcher), threading.Thread(target=writer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert m.tokens == 400 and float(m.lookup(unit[0])[0]) == 400.0
    assert all(s == int(s) for s in seen) and seen == sorted(seen)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_a_million_lookups_do_not_grow_memory(rng):
    m = linattn.Memory(64, symmetric=True)
    m.write(rows(rng, 10, 64))
    q = rows(rng, 64)
    for _ in range(50_000):  # warm up the allocator
        m.lookup(q)
    gc.collect()
    before = rss_kib()
    for _ in range(1_000_000):
        m.lookup(q)
    gc.collect()
    grown = rss_kib() - before
    # A leak of even one 256-byte result per call would be 250 MB.
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over a million lookups"


def test_threads_setting(rng):
    n = linattn.num_threads()
    linattn.set_num_threads(1)
    assert linattn.num_threads() == 1
    linattn.set_num_threads(n)
    with pytest.raises(linattn.ArgumentError):
        linattn.set_num_threads(0)


def test_help_reads_well():
    doc = linattn.Memory.__doc__
    assert "lookup" in doc and "dk" in doc
    assert "[m, dk]" in linattn.Memory.lookup.__doc__
    assert "[B,H,T,dk]" in linattn.causal_linear_attention.__doc__


def test_files_are_replaced_atomically(tmp_path, rng):
    """save() goes through a temporary file and a rename: the old file stays whole until the new one is."""
    path = str(tmp_path / "doc.lam")
    m = linattn.Memory(8)
    m.write(rows(rng, 3, 8), rows(rng, 3, 8))
    m.save(path)
    inode = os.stat(path).st_ino
    m.write(rows(rng, 3, 8), rows(rng, 3, 8))
    m.save(path)
    assert os.stat(path).st_ino != inode
    assert linattn.open_memory(path).tokens == 6
    assert sorted(os.listdir(tmp_path)) == ["doc.lam"]


# --- search -----------------------------------------------------------------------------------------------------

def test_search_ranks_memories_by_q_c_q(tmp_path, rng):
    d = 16
    docs = {f"doc-{i}": rows(rng, 20 + i, d) for i in range(30)}
    bank = linattn.Bank.create(str(tmp_path / "docs.lamb"))
    memories = []
    for name, h in docs.items():
        m = linattn.Memory(d, symmetric=True)
        m.write(h)
        memories.append(m)
    bank.append_all(dict(zip(docs, memories)))
    q = rows(rng, 4, d)
    scores = np.stack([(np.einsum("td,md->mt", h.astype(np.float64), q) ** 2).sum(-1) for h in docs.values()]).T  # [m, N]
    idx, sc = bank.search(q, k=5)
    assert idx.shape == (4, 5) and idx.dtype == np.int64 and sc.dtype == np.float32
    for i in range(4):
        expected = np.argsort(-scores[i], kind="stable")[:5]
        np.testing.assert_allclose(sc[i], scores[i][expected], rtol=1e-4)
        assert list(idx[i]) == list(expected)
    # The same from a list of live memories, and a one-query form.
    idx2, sc2 = linattn.search(memories, q, k=5)
    np.testing.assert_array_equal(idx2, idx)
    one_idx, one_sc = bank.search(q[0], k=3, names=["doc-7", "doc-3", 12])
    assert one_idx.shape == (3,) and set(one_idx) <= {7, 3, 12}
    idx_n, sc_n = bank.search(q, k=2, score="norm")
    norms = np.linalg.norm(np.stack([m.lookup(q) for m in memories]), axis=-1).T  # [m, N]
    np.testing.assert_allclose(sc_n, np.sort(norms, axis=1)[:, ::-1][:, :2], rtol=1e-4)
    with pytest.raises(linattn.ArgumentError, match="score"):
        bank.search(q, score="cosine")
    with pytest.raises(linattn.ArgumentError, match="k"):
        bank.search(q, k=0)
    with pytest.raises(TypeError, match="memories"):
        linattn.search([memories[0], "x"], q)


def test_pickling_keeps_every_bit(tmp_path, rng):
    import pickle
    m = linattn.Memory(8, symmetric=True, normalize=False, dtype="bf16")
    m.write(rows(rng, 5, 8))
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.state, m.state)  # the fp32 state, not the bf16 stored form
    assert back.tokens == 5 and back.dtype == "bf16" and back.symmetric
    z = linattn.Memory(4, 3, normalize=True, feature_map="elu+1")
    z.write(rows(rng, 6, 4), rows(rng, 6, 3))
    zb = pickle.loads(pickle.dumps(z))
    np.testing.assert_array_equal(zb.normalizer, z.normalizer)
    c = linattn.compress(m, rank=2)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(c)).lookup(np.ones(8)), c.lookup(np.ones(8)))
    m.save(str(tmp_path / "m.lam"))
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(linattn.open_memory(str(tmp_path / "m.lam")))


def test_views_without_bytes_of_their_own_say_so(tmp_path, rng):
    m = linattn.Memory(8, symmetric=True)
    m.write(rows(rng, 4, 8))
    m.save(str(tmp_path / "m.lam"))
    mapped = linattn.open_memory(str(tmp_path / "m.lam"))
    with pytest.raises(linattn.ArgumentError, match="views a file"):
        mapped.to_bytes()
    with pytest.raises(linattn.ArgumentError, match="views a file"):
        mapped.save(str(tmp_path / "copy.lam"))
    bank = linattn.Bank.create(str(tmp_path / "b.lamb"))
    with pytest.raises(linattn.ArgumentError, match="without bytes of its own"):
        bank.append("mapped", mapped)
    with pytest.raises(TypeError, match="Memory or linattn.MemoryView"):
        bank.append("x", "not a memory")
    with pytest.raises(linattn.ArgumentError, match="pairs"):
        bank.append_all([("a", m, "extra")])
    bank.append("copy", mapped.to_memory())  # the documented way
    assert len(bank) == 1
    with pytest.raises(linattn.ArgumentError, match="exactly one"):
        linattn.compress(m, rank=2, max_error=0.1)
    with pytest.raises(linattn.ArgumentError, match="not a pickled"):
        linattn.Memory.__new__(linattn.Memory).__setstate__((2,))


def test_relatives_as_memory_kinds(tmp_path, rng):
    import pickle
    k = rng.standard_normal((20, 5)).astype(np.float32) * 4
    v = rng.standard_normal((20, 3)).astype(np.float32)
    q = rng.standard_normal((2, 5)).astype(np.float32)
    for kind, want in [("galerkin", linattn.galerkin_attention(q[None, None], k[None, None], v[None, None])[0, 0]),
                       ("content-lambda", linattn.content_lambda_attention(q[None, None], k[None, None], v[None, None])[0, 0]),
                       ("kslot", linattn.kslot_memory_lookup(q[None, None], linattn.kslot_memory_encode(k[None, None], v[None, None]))[0, 0])]:
        mean = kind == "galerkin"
        whole, parts = linattn.Memory(5, 3, kind=kind), linattn.Memory(5, 3, kind=kind)
        whole.write(k, v)
        parts.write(k[:7], v[:7])
        tail = linattn.Memory(5, 3, kind=kind)
        tail.write(k[7:], v[7:])
        parts.merge(tail)
        for m in (whole, parts):
            np.testing.assert_allclose(m.lookup(q, mean=mean), want, rtol=1e-4, atol=1e-5)
        assert whole.kind == kind and kind in repr(whole)
        whole.save(str(tmp_path / f"{kind}.lam"))
        view = linattn.open_memory(str(tmp_path / f"{kind}.lam"))
        assert view.kind == kind
        np.testing.assert_allclose(view.lookup(q, mean=mean), whole.lookup(q, mean=mean), rtol=1e-6)
        again = pickle.loads(pickle.dumps(whole))
        assert again.kind == kind
        np.testing.assert_array_equal(again.lookup(q, mean=mean), whole.lookup(q, mean=mean))
    with pytest.raises(linattn.ArgumentError, match="kind"):
        linattn.Memory(4, kind="quadratic")
    with pytest.raises(linattn.ArgumentError, match="config.kind"):
        linattn.Memory(4, kind="kslot", normalize=True)
