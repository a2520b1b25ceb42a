#!/usr/bin/env python3
"""Encode a set of documents once into fixed-size memories, keep them in a bank, query them.

Each word becomes a vector (a fixed random embedding per word, so the example needs no model);
a document of T words is stored as C = sum_t h_t h_t^T (d x d numbers, whatever T is). A
question q is answered by every document at O(d^2), and q^T C q = sum_t (h_t . q)^2 says how
strongly a document holds what q asks about: Bank.search ranks the documents by it.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/encode_and_query.py [--bank docs.lamb]
"""
import argparse
import os
import tempfile
import zlib

import numpy as np

import linattn

DOCUMENTS = {
    "kitchen": "mary went to the kitchen and picked up the apple then she cooked soup",
    "garden": "john walked into the garden where the roses and the tulips grow",
    "office": "sandra sat in the office and wrote a long report on the computer",
    "hallway": "daniel dropped the football in the hallway near the door",
}


def embed(word, d):
    """A fixed random unit vector per word (seeded by the word's CRC, so the same every run)."""
    v = np.random.default_rng(zlib.crc32(word.encode())).standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", help="the bank file to write (default: a temporary file)")
    ap.add_argument("-d", type=int, default=64, help="embedding width")
    args = ap.parse_args()
    path = args.bank or os.path.join(tempfile.mkdtemp(), "docs.lamb")

    bank = linattn.Bank.create(path)
    memories = {}
    for name, text in DOCUMENTS.items():
        h = np.stack([embed(w, args.d) for w in text.split()])
        memory = linattn.Memory(args.d, symmetric=True, dtype="bf16")  # stored in d(d+1)/2 bf16 numbers
        memory.write(h)
        memories[name] = memory
    bank.append_all(memories)  # one crash-safe commit
    print(f"{len(bank)} documents in {path} ({os.path.getsize(path)} bytes)")

    questions = ("apple", "football", "roses", "report")
    q = np.stack([embed(w, args.d) for w in questions])
    # Every document answers every question at O(d^2); the best by q^T C q, best first.
    indices, scores = bank.search(q, k=2)
    for question, idx, sc in zip(questions, indices, scores):
        ranked = ", ".join(f"{bank.names[i]} {s:.2f}" for i, s in zip(idx, sc))
        print(f"{question!r:>11}: {bank.names[idx[0]]:<8} (q^T C q: {ranked})")
    # The answers themselves, C q for every document: [documents, d].
    answers = bank.lookup(q[0])
    print(f"C q for 'apple' from each of the {answers.shape[0]} documents: {answers.shape[1]} numbers each")

if __name__ == "__main__":
    main()
