#!/usr/bin/env python
"""Training speed: samples/s in the training step and the fraction of the machine's float32 matmul rate.

Times :func:`prospect_emulator.training.train.train_emulator` itself (Keras
3 / TensorFlow, the paper's network, Nadam, RMSE loss, batches of 1000) on a
real training set: one stage of a few epochs; the first epoch (graph tracing)
is left out and the median of the others is reported:

* s / epoch per 10^5 training samples (whole epoch: gradient steps and the
  validation pass);
* samples/s in the training step: training samples / time in the gradient
  steps only (``history[i]["train_seconds"]``);
* GFLOP/s of the training step: samples/s x matrix-product FLOPs per sample
  (forward x @ W, backward dY @ W^T and x^T @ dY for every Dense layer, none
  for the input gradient of the first: 6 sum(n_in n_out) - 2 n_in,1 n_out,1);
* the machine's float32 matrix-product rate measured in the same run with
  TensorFlow on exactly those products (the layer shapes at the batch size,
  forward and backward), and on a 2048 x 2048 x 2048 product for reference;
* the fraction: training-step GFLOP/s / matmul GFLOP/s of the layer shapes.

Usage::

    python benchmarks/bench_train.py --quick                  # generate 3000 models, 3 epochs
    python benchmarks/bench_train.py --training-set train.h5  # 5 timed epochs
    python benchmarks/bench_train.py --training-set train.h5 --widths 128,256,512 --out t.md
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table, training_set  # noqa: E402


def time_width(path, width, epochs, batch_size):
    from prospect_emulator.training.train import train_emulator
    r = train_emulator(path, width, None, learning_rates=(1e-3,), max_epochs=epochs + 1,
                       patience=10 ** 6, batch_size=batch_size, test_fraction=0.02,
                       verbose=False)
    timed = r.history[1:]                     # the first epoch traces the graph
    n_train = r.emulator.provenance["n_train"]
    per_epoch = float(np.median([h["seconds"] for h in timed]))
    step_seconds = float(np.median([h["train_seconds"] for h in timed]))
    sizes = [w.shape for w in r.emulator.weights]           # (n_in, n_out) per Dense layer
    flops_per_sample = 6 * sum(a * b for a, b in sizes) - 2 * sizes[0][0] * sizes[0][1]
    samples_per_s = n_train / step_seconds
    return {"width": width, "n_train": n_train, "epochs": len(timed), "per_epoch": per_epoch,
            "per_1e5": per_epoch * 1e5 / n_train, "n_outputs": r.emulator.n_filters + 1,
            "n_inputs": sizes[0][0], "samples_per_s": samples_per_s, "layer_sizes": sizes,
            "flops_per_sample": flops_per_sample,
            "train_gflops": samples_per_s * flops_per_sample / 1e9}


def matmul_gflops(products, min_seconds=2.0):
    """float32 GFLOP/s of TensorFlow running ``products`` [(m, k, n), ...] (A_mk @ B_kn)
    back to back inside one compiled graph, best of several timed repeats."""
    import time

    import tensorflow as tf
    rng = np.random.default_rng(0)
    # variables, not constants (no constant folding), scaled to keep values O(1)
    pairs = [(tf.Variable(rng.standard_normal((m, k)), dtype=tf.float32),
              tf.Variable(rng.standard_normal((k, n)) / np.sqrt(k), dtype=tf.float32))
             for m, k, n in products]
    flops = sum(2.0 * m * k * n for m, k, n in products)

    @tf.function
    def run(n_repeat):
        carry = tf.constant(0.0)
        for _ in tf.range(n_repeat):
            for a, b in pairs:
                # the carried scalar makes every product depend on the previous one,
                # so none is hoisted out of the loop or skipped (costs < 1 %)
                carry = tf.reduce_sum(tf.linalg.matmul(a + carry, b)) * 1e-30
        return carry

    run(tf.constant(1))                         # trace and warm up
    n_repeat, best = 1, float("inf")
    while True:                                  # enough repeats for ~0.2 s per timing
        t0 = time.perf_counter()
        run(tf.constant(n_repeat))
        dt = time.perf_counter() - t0
        if dt > 0.2:
            break
        n_repeat *= 2
    t_end = time.perf_counter() + min_seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        run(tf.constant(n_repeat))
        best = min(best, time.perf_counter() - t0)
    return flops * n_repeat / best / 1e9


def training_products(layer_sizes, batch_size):
    """The matrix products of one training step: per Dense layer forward x @ W,
    backward dY @ W^T (not for the first layer) and x^T @ dY."""
    out = []
    for i, (n_in, n_out) in enumerate(layer_sizes):
        out.append((batch_size, n_in, n_out))
        if i > 0:
            out.append((batch_size, n_out, n_in))
        out.append((n_in, batch_size, n_out))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-set", help="training set to time on (default: generate one)")
    parser.add_argument("--quick", action="store_true", help="3000 generated models, 3 timed epochs")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="models to generate without --training-set (default 20000)")
    parser.add_argument("--widths", default="128,256")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 5)

    n = args.n_samples or (3000 if args.quick else 20000)
    rows = []
    with training_set(args.training_set, n, who="bench_train") as path:
        for width in [int(w) for w in args.widths.split(",")]:
            print(f"bench_train: width {width} ...", file=sys.stderr, flush=True)
            rows.append(time_width(path, width, epochs, args.batch_size))
    import keras
    import tensorflow as tf
    print("bench_train: float32 matmul rates ...", file=sys.stderr, flush=True)
    square = matmul_gflops([(2048, 2048, 2048)])
    for r in rows:
        r["matmul_gflops"] = matmul_gflops(training_products(r["layer_sizes"], args.batch_size))
        r["fraction"] = r["train_gflops"] / r["matmul_gflops"]
    lines = [f"Training speed (Keras {keras.__version__}, "
             f"TensorFlow {tf.__version__}, CPU threads: TensorFlow default), batch {args.batch_size}, "
             f"{rows[0]['n_inputs']} network inputs, {rows[0]['n_outputs']} outputs",
             ""] + machine_lines() + [
             f"- float32 matmul 2048x2048x2048 (TensorFlow): {square:.1f} GFLOP/s", ""]
    lines += markdown_table(
        ["width", "training samples", "timed epochs", "s / epoch", "s / epoch per 10^5 samples",
         "training step (samples/s)", "training step (GFLOP/s)",
         "matmul of the layer shapes (GFLOP/s)", "fraction of matmul rate"],
        [[r["width"], r["n_train"], r["epochs"], f"{r['per_epoch']:.3f}", f"{r['per_1e5']:.2f}",
          f"{r['samples_per_s']:.0f}", f"{r['train_gflops']:.1f}", f"{r['matmul_gflops']:.1f}",
          f"{r['fraction']:.0%}"] for r in rows], "rrrrrrrrr")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
