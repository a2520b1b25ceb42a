#!/usr/bin/env python3
"""A small causal training loop with decay: a linattn.torch.CausalLinearAttention layer (GLA's
per-channel decay by default) learns to recall, at each position, the value that followed the
same key earlier in the sequence (associative recall). Forward and backward run linattn's
kernels; the loss falls as the layer learns to write pairs into its state and read them back.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/causal_training.py [--steps 300]
"""
import argparse

import torch

import linattn.torch as lt


def batch(B, pairs, vocab, generator):
    """Sequences k1 v1 k2 v2 ... then the keys again; targets: each repeated key's value."""
    keys = torch.stack([torch.randperm(vocab // 2, generator=generator)[:pairs] for _ in range(B)])
    values = torch.randint(vocab // 2, vocab, (B, pairs), generator=generator)
    first = torch.stack([keys, values], 2).reshape(B, 2 * pairs)
    order = torch.stack([torch.randperm(pairs, generator=generator) for _ in range(B)])
    tokens = torch.cat([first, keys.gather(1, order)], 1)
    targets = torch.cat([torch.full((B, 2 * pairs), -100), values.gather(1, order)], 1)
    return tokens, targets


class Model(torch.nn.Module):
    def __init__(self, vocab, width, heads, decay):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.attention = lt.CausalLinearAttention(width, heads, decay=decay)
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        return self.head(self.norm(x + self.attention(x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--decay", default="per_channel", choices=["none", "per_head", "per_step", "per_channel"])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    vocab = 32
    model = Model(vocab, args.width, heads=2, decay=args.decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(1, args.steps + 1):
        tokens, targets = batch(32, args.pairs, vocab, g)
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, args.steps // 10) == 0 or step == 1:
            with torch.no_grad():
                mask = targets >= 0
                accuracy = (logits.argmax(-1)[mask] == targets[mask]).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.3f}  recall accuracy {accuracy:.2f}", flush=True)


if __name__ == "__main__":
    main()
