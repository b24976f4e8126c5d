#!/usr/bin/env python
"""Training speed: seconds per epoch per 10^5 training samples, widths 128 and 256.

Times :func:`prospect_emulator.training.train.train_emulator` itself (Keras
3 / TensorFlow, the paper's network, Nadam, RMSE loss, batches of 1000) on a
real training set: one stage of a few epochs; the first epoch (graph tracing)
is left out and the median of the others is reported, scaled to 10^5
training samples (an epoch costs time proportional to the samples).

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
    seconds = [h["seconds"] for h in r.history[1:]]     # the first epoch traces the graph
    n_train = r.emulator.provenance["n_train"]
    per_epoch = float(np.median(seconds))
    return {"width": width, "n_train": n_train, "epochs": len(seconds), "per_epoch": per_epoch,
            "per_1e5": per_epoch * 1e5 / n_train, "n_outputs": r.emulator.n_filters + 1,
            "n_inputs": r.emulator.weights[0].shape[0]}


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
    lines = [f"Training speed (Keras {keras.__version__}, "
             f"TensorFlow {tf.__version__}, CPU threads: TensorFlow default), batch {args.batch_size}, "
             f"{rows[0]['n_inputs']} network inputs, {rows[0]['n_outputs']} outputs",
             ""] + machine_lines() + [""]
    lines += markdown_table(
        ["width", "training samples", "timed epochs", "s / epoch", "s / epoch per 10^5 samples"],
        [[r["width"], r["n_train"], r["epochs"], f"{r['per_epoch']:.3f}", f"{r['per_1e5']:.2f}"]
         for r in rows], "rrrrr")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
