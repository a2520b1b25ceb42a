#!/usr/bin/env python3
"""A client of linattn-serve over HTTP with NumPy and the standard library only.

It makes a bank of three documents, starts `linattn serve` on a free loopback port, adds a
fourth document with PUT, answers questions with lookups (.npy in and out) and a search (JSON),
then stops the server:

    PYTHONPATH=build/python python3 examples/serve/http_client.py --linattn build/bin/linattn
"""
import argparse
import io
import json
import os
import subprocess
import tempfile
import time
import urllib.request

import numpy as np

import linattn

D = 64


def npy(a):
    b = io.BytesIO()
    np.save(b, np.asarray(a, dtype=np.float32))
    return b.getvalue()


def call(url, method="GET", body=None, content_type="application/json", accept="application/json"):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(req) as r:
        data = r.read()
        return np.load(io.BytesIO(data)) if r.headers["Content-Type"] == "application/x-npy" else json.loads(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--linattn", default="linattn", help="the linattn program")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((4, D)).astype(np.float32)  # one direction per topic

    def document(topic, tokens=40):
        # Hidden states leaning towards one topic's direction.
        return (0.3 * rng.standard_normal((tokens, D)) + topics[topic]).astype(np.float32) / np.sqrt(D)

    with tempfile.TemporaryDirectory() as tmp:
        bank = os.path.join(tmp, "docs.lamb")
        linattn.Bank.create(bank)
        docs = {}
        for i, name in enumerate(("kitchen", "garden", "office")):
            m = linattn.Memory(D, symmetric=True)
            m.write(document(i))
            docs[name] = m
        linattn.Bank(bank).append_all(docs)

        ready = os.path.join(tmp, "ready.json")
        server = subprocess.Popen([a.linattn, "serve", bank, "--http", "127.0.0.1:0", "--grpc", "off",
                                   "--ready-file", ready], stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(ready):
                if server.poll() is not None:
                    raise SystemExit("linattn serve did not start")
                time.sleep(0.02)
            url = f"http://127.0.0.1:{json.load(open(ready))['http']}"
            print("health:", call(url + "/v1/health")["status"])

            # A fourth document, encoded by the server from its hidden states (JSON body).
            added = call(url + "/v1/memories/hallway", "PUT", json.dumps({"keys": document(3).tolist()}).encode())
            print(f"added {added['name']}: {added['tokens']} tokens, {added['bytes']} bytes")
            print("memories:", ", ".join(m["name"] for m in call(url + "/v1/memories")["memories"]))

            # Lookups with .npy bodies: each topic's question against the kitchen's memory.
            r = call(url + "/v1/memories/kitchen/lookup", "POST", npy(topics), "application/x-npy", "application/x-npy")
            print("kitchen answers", r.shape[0], "questions; strongest for topic", int(np.argmax(r @ topics[0])))

            # Which document answers each topic's question best: a search over every memory.
            hits = call(url + "/v1/search", "POST", json.dumps({"queries": topics.tolist(), "k": 1}).encode())
            for t, h in enumerate(hits["results"]):
                print(f"topic {t}: {h[0]['name']} (score {h[0]['score']:.3g})")
        finally:
            server.terminate()
            server.wait(20)


if __name__ == "__main__":
    main()
