"""linattn_redis.so in a real Redis Cluster of 3 primaries and 3 replicas on loopback, started by
apps/redis/redis-cluster.sh and torn down after: commands across slots, a primary killed with
kill -9 under a write load (every write acknowledged by a replica survives), and resharding
under load (no memory lost or altered)."""
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster

import linattn

MODULE = os.environ.get("LINATTN_REDIS_MODULE")
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "apps", "redis", "redis-cluster.sh")
D = 16


def free_ports(n):
    """n free ports whose cluster-bus ports (+10000) are free too."""
    ports = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p > 50000 or p in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        ports.append(p)
    return ports


def blob(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


@pytest.fixture
def cluster(tmp_path):
    if not MODULE:
        pytest.skip("LINATTN_REDIS_MODULE unset")
    d = str(tmp_path / "cluster")
    ports = free_ports(6)
    subprocess.run(["sh", SCRIPT, "start", d, MODULE, *map(str, ports)], check=True, timeout=120)
    try:
        yield d, ports
    finally:
        subprocess.run(["sh", SCRIPT, "stop", d], timeout=120)


def client(ports):
    return RedisCluster(host="127.0.0.1", port=ports[0], cluster_error_retry_attempts=10)


def cycle_writes(names, rng, rows, stop):
    """(name, keys [rows, D]) round robin over `names` until `stop` is set."""
    i = 0
    while not stop.is_set():
        yield names[i % len(names)], rng.standard_normal((rows, D), dtype=np.float32)
        i += 1


def replay(writes):
    m = linattn.Memory(D, symmetric=True)
    for k in writes:
        m.write(k)
    return m


def test_commands_across_the_cluster(cluster):
    _, ports = cluster
    rc = client(ports)
    rng = np.random.default_rng(1)
    names = [f"doc:{i}" for i in range(30)]
    writes = {}
    for n in names:
        rc.execute_command("LA.CREATE", n, "DK", D, "SYMMETRIC")
        writes[n] = [rng.standard_normal((5, D), dtype=np.float32)]
        rc.execute_command("LA.WRITE", n, "KEYS", blob(writes[n][0]))
    slots = {rc.keyslot(n) for n in names}
    assert len(slots) > 10
    owners = {rc.get_node_from_key(n).port for n in names}
    assert len(owners) == 3  # every primary holds some
    q = rng.standard_normal((2, D), dtype=np.float32)
    for n in names:
        got = np.frombuffer(rc.execute_command("LA.LOOKUP", n, "QUERIES", blob(q)), "<f4").reshape(2, D)
        np.testing.assert_allclose(got, replay(writes[n]).lookup(q), rtol=1e-5, atol=1e-5)
    # MLOOKUP takes keys of one slot (a hash tag), as Redis Cluster requires.
    for n in ("{user7}:a", "{user7}:b"):
        rc.execute_command("LA.CREATE", n, "DK", D, "SYMMETRIC")
    answers = rc.execute_command("LA.MLOOKUP", "QUERIES", blob(q), "KEYS", "{user7}:a", "{user7}:b")
    assert len(answers) == 2
    with pytest.raises(redis.exceptions.RedisClusterException):
        rc.execute_command("LA.MLOOKUP", "QUERIES", blob(q), "KEYS", "doc:1", "doc:2")


def primaries(port):
    """node id -> port of every primary that holds slots and is not failing, as `port` sees it."""
    out = {}
    for addr, node in redis.Redis(host="127.0.0.1", port=port).execute_command("CLUSTER NODES").items():
        if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"]:
            out[node["node_id"]] = int(addr.split(":")[1].split("@")[0])
    return out


class Router:
    """Commands sent straight to the node that owns a key, following MOVED: unlike a cluster
    client it keeps the connection a write went through, for the WAIT that must follow it."""

    def __init__(self, ports):
        self.ports = list(ports)
        self.conns = {}
        self.owner = {}

    def call(self, key, *args):
        port = self.owner.get(key, self.ports[0])
        for _ in range(100):
            try:
                c = self.conns.get(port) or self.conns.setdefault(port, redis.Redis(host="127.0.0.1", port=port, socket_timeout=3))
                return c, c.execute_command(*args)
            except redis.exceptions.ResponseError as e:
                words = str(e).split()
                if words and words[0] == "MOVED":
                    port = self.owner[key] = int(words[2].rsplit(":", 1)[1])
                    continue
                if words and words[0] in ("CLUSTERDOWN", "TRYAGAIN", "LOADING"):
                    time.sleep(0.1)
                    continue
                raise
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self.conns.pop(port, None)
                if port in self.ports and len(self.ports) > 1:
                    self.ports.remove(port)  # dead: ask the others who owns the key now
                port = self.ports[0]
                time.sleep(0.1)
        raise RuntimeError(f"no node answered for {key}")


def test_kill_a_primary_under_writes_every_acknowledged_write_survives(cluster):
    d, ports = cluster
    rng = np.random.default_rng(2)
    router = Router(ports)
    names = [f"m{i}" for i in range(12)]
    for n in names:
        router.call(n, "LA.CREATE", n, "DK", D, "SYMMETRIC")
    writes = {n: [] for n in names}
    acked = {n: 0 for n in names}  # tokens a replica confirmed (WAIT 1)
    victim_port = router.owner.get(names[0], ports[0])
    stop = threading.Event()
    failures = []

    def writer():
        w = Router(ports)
        for n, k in cycle_writes(names, rng, 2, stop):
            try:
                c, tokens = w.call(n, "LA.WRITE", n, "KEYS", blob(k))
            except Exception as e:  # not written: not counted
                failures.append(repr(e))
                continue
            writes[n].append(k)
            try:
                if c.execute_command("WAIT", 1, 2000) >= 1:
                    acked[n] = tokens
            except Exception:
                pass  # the primary died before its replica confirmed: this write may be lost

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.0)
    os.kill(int(open(os.path.join(d, str(victim_port), "pid")).read()), signal.SIGKILL)
    alive = next(p for p in ports if p != victim_port)
    deadline = time.time() + 30
    while victim_port in primaries(alive).values() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # writes resume on the promoted replica
    stop.set()
    t.join(60)
    assert victim_port not in primaries(alive).values(), "no failover"
    check = Router([p for p in ports if p != victim_port])
    q = rng.standard_normal((1, D), dtype=np.float32)
    for n in names:
        info = check.call(n, "LA.INFO", n)[1]
        tokens = dict(zip(*[iter(info)] * 2))[b"tokens"]
        assert tokens >= acked[n], (n, tokens, acked[n])
        # What is there is exactly the first tokens/2 writes, in order: nothing altered.
        got = np.frombuffer(check.call(n, "LA.LOOKUP", n, "QUERIES", blob(q))[1], "<f4")
        np.testing.assert_allclose(got, replay(writes[n][: tokens // 2]).lookup(q)[0], rtol=1e-4, atol=1e-4)
    assert sum(acked.values()) > 0
    # Writes went on after the failover (lookups and writes resume).
    assert sum(len(v) for v in writes.values()) > 2 * len(names)


def test_resharding_under_load_loses_and_alters_nothing(cluster):
    _, ports = cluster
    rng = np.random.default_rng(3)
    rc = client(ports)
    names = [f"r{i}" for i in range(40)]
    writes = {n: [] for n in names}
    for n in names:
        rc.execute_command("LA.CREATE", n, "DK", D, "SYMMETRIC")
    stop = threading.Event()
    errors = []

    def writer():
        w = client(ports)
        for n, k in cycle_writes(names, rng, 1, stop):
            try:
                w.execute_command("LA.WRITE", n, "KEYS", blob(k))
                writes[n].append(k)
            except Exception as e:  # a write that failed is not counted; report it
                errors.append(repr(e))

    t = threading.Thread(target=writer)
    t.start()
    nodes = primaries(ports[0])
    ids = list(nodes)
    subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{ports[0]}", "--cluster-from", ids[0],
                    "--cluster-to", ids[1], "--cluster-slots", "3000", "--cluster-yes"],
                   check=True, capture_output=True, timeout=240)
    stop.set()
    t.join(30)
    q = rng.standard_normal((1, D), dtype=np.float32)
    for n in names:
        tokens = dict(zip(*[iter(rc.execute_command("LA.INFO", n))] * 2))[b"tokens"]
        assert tokens == len(writes[n]), (n, tokens, len(writes[n]))
        got = np.frombuffer(rc.execute_command("LA.LOOKUP", n, "QUERIES", blob(q)), "<f4")
        np.testing.assert_allclose(got, replay(writes[n]).lookup(q)[0], rtol=1e-4, atol=1e-4)
    assert sum(len(v) for v in writes.values()) > 100
    assert len(errors) < 5, errors[:5]


def test_the_python_cluster_example_runs(cluster):
    _, ports = cluster
    import sys
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "redis", "cluster_client.py")
    out = subprocess.run([sys.executable, script, "--port", str(ports[0]), "--documents", "30"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert "30 documents on 3 primaries" in out, out
    assert "topic 7 is best answered by doc:7 " in out, out
