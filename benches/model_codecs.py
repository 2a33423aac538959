#!/usr/bin/env python3
"""Stored bytes per new checkpoint under the model-weight codecs ZipNN and
z4ai, standalone and in their delta modes, on the safetensors checkpoints
benches/train_run.py makes (issue #17; benches/delta.sh calls this and puts
the rows in its table, docs/BENCHMARKS.md).

Usage: python3 benches/model_codecs.py --dtype bf16|fp32 CKPT0 CKPT1 ...
       (the checkpoints of one dtype, in training order)
Env:   CODECS="zipnn zipnn-delta z4ai z4ai-delta"   which rows (default all
       four; also z4ai-delta-buf: z4ai.compress_delta on the whole file)
Needs: numpy, and in the same interpreter zipnn (0.5.4 measured; imports
       torch) and z4ai (0.2.0 measured). A codec that does not import or
       fails prints its row as "error" and the exact error on stderr.

What each codec stores, per checkpoint:
  zipnn           ZipNN(input_format="byte", bytearray_dtype=bfloat16|float32)
                  on the whole file's bytes (how its examples compress a
                  safetensors file; byte grouping for the dtype; header and
                  the small int64 tensor go through the same grouping).
  zipnn-delta     the same with delta_compressed_type="byte" and the previous
                  checkpoint as delta_second_data (ZipNN XORs the two files
                  and compresses the XOR). The first checkpoint is zipnn.
  z4ai            z4ai.safetensors.compress_bytes: z4ai's safetensors
                  container, every tensor compressed with its own dtype.
  z4ai-delta      z4ai.model_delta.compress(current, previous): tensors
                  matched by name, each stored as COPY, an XOR delta frame
                  or a full frame. The first checkpoint is z4ai.
  z4ai-delta-buf  z4ai.compress_delta(current, previous, dtype) on the whole
                  file bytes (its README's example). Not in the default set.
A delta row's new checkpoint decodes only given the previous checkpoint
itself (a chain back to the first one), which these figures do not charge.

Every compressed result is decompressed and compared byte for byte with the
input; a mismatch aborts. ZipNN may write into its input buffer, so it gets
a fresh copy of the bytes every call. Output on stdout: one markdown row per
codec in benches/delta.sh's columns; "first" is the first checkpoint's
stored bytes, the mean is over the new checkpoints (2nd onward), MB/s is raw
MB per second of compress() alone on the new checkpoints, timed in this
process (noisy on a shared machine). Per-checkpoint sizes, decompress times
and the peak RSS go to stderr.
"""

import argparse
import os
import resource
import sys
import time

ZIPNN_DTYPE = {"bf16": "bfloat16", "fp32": "float32"}
Z4AI_DTYPE = {"bf16": "bf16", "fp32": "fp32"}
DEFAULT_CODECS = "zipnn zipnn-delta z4ai z4ai-delta"


class CodecError(Exception):
    """A codec failed to import, compress, or round-trip."""


def zipnn_codec(dtype, delta):
    from zipnn import ZipNN

    # A fresh ZipNN per call: it keeps per-call header state on self. Every
    # buffer handed to it is a new bytearray (it may write into its input).
    def make(with_delta):
        return ZipNN(
            input_format="byte",
            bytearray_dtype=ZIPNN_DTYPE[dtype],
            delta_compressed_type="byte" if with_delta else 0,
        )

    def compress(cur, prev):
        if delta and prev is not None:
            return bytes(make(True).compress(bytearray(cur), delta_second_data=bytearray(prev)))
        return bytes(make(False).compress(bytearray(cur)))

    def decompress(blob, prev):
        if delta and prev is not None:
            return bytes(make(True).decompress(bytearray(blob), delta_second_data=bytearray(prev)))
        return bytes(make(False).decompress(bytearray(blob)))

    return compress, decompress


def z4ai_codec(dtype, mode):
    import z4ai
    from z4ai import model_delta
    from z4ai import safetensors as z4st

    def compress(cur, prev):
        if prev is None or mode == "standalone":
            return z4st.compress_bytes(cur)
        if mode == "model":
            return model_delta.compress(cur, prev)
        return z4ai.compress_delta(cur, prev, dtype=Z4AI_DTYPE[dtype])

    def decompress(blob, prev):
        if prev is None or mode == "standalone":
            return z4st.decompress_bytes(blob)
        if mode == "model":
            return model_delta.decompress(blob, prev)
        return z4ai.decompress_delta(blob, prev)

    return compress, decompress


def codec(name, dtype):
    makers = {
        "zipnn": lambda: zipnn_codec(dtype, False),
        "zipnn-delta": lambda: zipnn_codec(dtype, True),
        "z4ai": lambda: z4ai_codec(dtype, "standalone"),
        "z4ai-delta": lambda: z4ai_codec(dtype, "model"),
        "z4ai-delta-buf": lambda: z4ai_codec(dtype, "buffer"),
    }
    if name not in makers:
        raise SystemExit(f"unknown codec {name!r}; known: {' '.join(makers)}")
    try:
        return makers[name]()
    except Exception as e:  # an import failure is a finding, not a crash
        raise CodecError(f"{type(e).__name__}: {e}") from e


def measure(name, dtype, files):
    compress, decompress = codec(name, dtype)
    sizes, secs = [], 0.0
    prev = None
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            cur = f.read()
        try:
            t0 = time.perf_counter()
            blob = compress(cur, prev)
            t1 = time.perf_counter()
            back = decompress(blob, prev)
            t2 = time.perf_counter()
        except Exception as e:
            raise CodecError(f"{os.path.basename(path)}: {type(e).__name__}: {e}") from e
        if bytes(back) != cur:
            raise CodecError(f"{os.path.basename(path)}: round trip differs from the input")
        if i > 0:
            secs += t1 - t0
        sizes.append(len(blob))
        print(
            f"[codecs] {dtype} {name} {os.path.basename(path)}: {len(blob)} of {len(cur)} "
            f"({len(blob) / len(cur):.3f}), compress {t1 - t0:.1f} s, decompress {t2 - t1:.1f} s, round trip exact",
            file=sys.stderr,
            flush=True,
        )
        prev = cur
    return sizes, secs


def main():
    ap = argparse.ArgumentParser(description="ZipNN and z4ai on a run's checkpoints (see the header).")
    ap.add_argument("--dtype", required=True, choices=sorted(ZIPNN_DTYPE))
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if len(args.files) < 2:
        raise SystemExit("need at least two checkpoints (a first and a new one)")
    raw = os.path.getsize(args.files[0])
    n = len(args.files) - 1
    for name in os.environ.get("CODECS", DEFAULT_CODECS).split():
        try:
            sizes, secs = measure(name, args.dtype, args.files)
        except CodecError as e:
            print(f"[codecs] {args.dtype} {name}: error: {e}", file=sys.stderr, flush=True)
            print(f"| {args.dtype} | {name} | {raw} | error | error | — | — |", flush=True)
            continue
        mean = sum(sizes[1:]) // n
        mbps = f"{raw * n / secs / 1e6:.0f}" if secs > 0 else "—"
        print(f"| {args.dtype} | {name} | {raw} | {sizes[0]} | {mean} | {mean / raw:.3f} | {mbps} |", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"[codecs] {args.dtype} peak RSS {rss / 1024:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
