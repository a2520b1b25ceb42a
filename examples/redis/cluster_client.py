#!/usr/bin/env python3
"""Documents encoded with NumPy into memories stored across a Redis Cluster, then queried there.

Each document's memory lives on the node its key hashes to; a lookup sends the query and gets the
answer back in one round trip, never the d x d state. Needs a cluster with linattn_redis.so
loaded (apps/redis/redis-cluster.sh starts one on loopback):

    sh apps/redis/redis-cluster.sh start /tmp/la-cluster build/lib/linattn_redis.so 7001 7002 7003 7004 7005 7006
    python3 examples/redis/cluster_client.py --port 7001
    sh apps/redis/redis-cluster.sh stop /tmp/la-cluster
"""
import argparse

import numpy as np
from redis.cluster import RedisCluster

D = 64


def blob(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=7001, help="any node of the cluster, on 127.0.0.1")
    ap.add_argument("--documents", type=int, default=50)
    a = ap.parse_args()
    rc = RedisCluster(host="127.0.0.1", port=a.port)
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((a.documents, D)).astype(np.float32)
    for i in range(a.documents):
        key = f"doc:{i}"
        rc.delete(key)
        rc.execute_command("LA.CREATE", key, "DK", D, "SYMMETRIC", "DTYPE", "bf16")
        # A document: 100 hidden states leaning towards its topic, written in two pieces.
        h = (0.5 * rng.standard_normal((100, D)) + topics[i]).astype(np.float32) / np.sqrt(D)
        rc.execute_command("LA.WRITE", key, "KEYS", blob(h[:60]))
        rc.execute_command("LA.WRITE", key, "KEYS", blob(h[60:]))
    nodes = {rc.get_node_from_key(f"doc:{i}").port for i in range(a.documents)}
    print(f"{a.documents} documents on {len(nodes)} primaries")

    # Which document is about topic 7? Ask every memory the topic's question: q . (C q).
    q = topics[7:8]
    scores = []
    for i in range(a.documents):
        r = np.frombuffer(rc.execute_command("LA.LOOKUP", f"doc:{i}", "QUERIES", blob(q)), "<f4")
        scores.append(float(q[0] @ r))
    best = int(np.argmax(scores))
    print(f"topic 7 is best answered by doc:{best} (score {scores[best]:.3g})")
    info = dict(zip(*[iter(rc.execute_command("LA.INFO", f"doc:{best}"))] * 2))
    print(f"its memory: {info[b'tokens']} tokens in {info[b'bytes']} bytes ({info[b'dtype'].decode()}, "
          f"{info[b'layout'].decode()})")


if __name__ == "__main__":
    main()
