#!/usr/bin/env python
"""Prediction time of the NumPy runtime emulator against a bare NumPy forward pass.

For every hidden-layer width N (5 hidden GELU layers, 18 inputs, 137 outputs,
random weights, the architecture of Mathews et al. 2023, Sec. 2.2) this times

* a *bare* forward pass of the same weights written here with nothing but
  NumPy: normalise, ``x @ W + b`` with GELU (tanh approximation, eq. 6),
  linear output layer, denormalise (giving arsinh magnitudes);
* ``Emulator.predict_mags`` and ``Emulator.predict_maggies`` (input checks,
  forward pass, and for the latter the conversion to maggies, inverse of eq. 2);

for one parameter vector (shape (18,), the case of a sampler's likelihood
call) and for a batch of n = 10^4 vectors.  Timings use :mod:`timeit`; the
bare pass and the emulator are measured in alternating repeats so that a busy
machine slows both alike, and the table gives the best repeat (the median in
brackets) per call.  Target: single-call ``predict_maggies`` within 1.5x of the
bare pass.

Usage::

    python benchmarks/bench_emulator.py                  # full run, Markdown to stdout
    python benchmarks/bench_emulator.py --quick          # a few seconds per width
    python benchmarks/bench_emulator.py --out docs/bench_emulator.md
"""
import argparse
import os
import statistics
import sys
import timeit

import numpy as np

from prospect_emulator import Emulator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

N_INPUTS = 18
N_OUTPUTS = 137
N_HIDDEN = 5
WIDTHS = (32, 64, 128, 256, 512, 1024)
BATCH = 10_000
TARGET_RATIO = 1.5

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def bare_forward(x, weights, biases, in_mean, in_std, out_mean, out_std):
    """The reference computation: a plain MLP forward pass (arsinh mag).

    Written out here on purpose (not using the package), the way a user would
    code it by hand: normalise, hidden layers ``GELU(x @ W + b)`` (eq. 6),
    linear last layer, denormalise.
    """
    h = (x - in_mean) / in_std
    for w, b in zip(weights[:-1], biases[:-1]):
        z = h @ w + b
        h = 0.5 * z * (1.0 + np.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * (z * z * z))))
    return (h @ weights[-1] + biases[-1]) * out_std + out_mean


def random_network(width, seed=0):
    """Random weights of an 18 -> N x 5 -> 137 network and its Emulator."""
    rng = np.random.default_rng(seed)
    sizes = [N_INPUTS] + [width] * N_HIDDEN + [N_OUTPUTS]
    weights = [rng.normal(scale=1.0 / np.sqrt(n_in), size=(n_in, n_out))
               for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.1, size=n_out) for n_out in sizes[1:]]
    net = dict(weights=weights, biases=biases,
               in_mean=rng.normal(size=N_INPUTS), in_std=rng.uniform(0.5, 2.0, N_INPUTS),
               out_mean=rng.uniform(18.0, 30.0, N_OUTPUTS), out_std=np.ones(N_OUTPUTS))
    emu = Emulator(weights, biases, [f"p{i + 1}" for i in range(N_INPUTS)],
                   [f"filter_{k + 1}" for k in range(N_OUTPUTS)],
                   net["in_mean"], net["in_std"], net["out_mean"], net["out_std"],
                   param_ranges=np.tile([-5.0, 5.0], (N_INPUTS, 1)))
    return net, emu


def time_alternating(funcs, repeat, min_time):
    """Per-call seconds of each callable: best and median over ``repeat`` repeats.

    The number of calls per repeat is doubled until one repeat of the slowest
    callable lasts at least ``min_time`` seconds; the callables are timed in
    turn inside every repeat.  An item with a ``timeit(number)`` method (a
    :class:`timeit.Timer`, or a timer in another process) is used as it is.
    """
    timers = [f if hasattr(f, "timeit") else timeit.Timer(f) for f in funcs]
    number = 1
    while number < 10**7 and max(timer.timeit(number) for timer in timers) < min_time:
        number *= 2
    runs = [[] for _ in funcs]
    for _ in range(repeat):
        for run, timer in zip(runs, timers):
            run.append(timer.timeit(number) / number)
    return [(min(run), statistics.median(run)) for run in runs]


def run(widths, batch, quick):
    single_repeat, single_time = (5, 0.05) if quick else (15, 0.2)
    batch_repeat = 2 if quick else 5
    rng = np.random.default_rng(1)
    rows = []
    for width in widths:
        net, emu = random_network(width)
        args = (net["weights"], net["biases"], net["in_mean"], net["in_std"],
                net["out_mean"], net["out_std"])
        x1 = rng.uniform(-4.0, 4.0, N_INPUTS)
        xn = rng.uniform(-4.0, 4.0, (batch, N_INPUTS))
        # Same computation: the emulator must reproduce the bare pass first.
        np.testing.assert_allclose(emu.predict_mags(xn[:100]), bare_forward(xn[:100], *args),
                                   rtol=1e-12, atol=1e-10)

        single = time_alternating(
            [lambda: bare_forward(x1, *args), lambda: emu.predict_mags(x1),
             lambda: emu.predict_maggies(x1)], single_repeat, single_time)
        batched = time_alternating(
            [lambda: bare_forward(xn, *args), lambda: emu.predict_maggies(xn)],
            batch_repeat, 0.0)
        rows.append((width, single, batched))
        print(f"width {width}: single bare {single[0][0] * 1e6:.2f} us, predict_maggies "
              f"{single[2][0] * 1e6:.2f} us; batch bare {batched[0][0] * 1e3:.1f} ms, "
              f"predict_maggies {batched[1][0] * 1e3:.1f} ms", file=sys.stderr)
    return rows


def markdown(rows, batch, quick):
    us = lambda t: f"{t[0] * 1e6:.2f} ({t[1] * 1e6:.2f})"
    ms = lambda t: f"{t[0] * 1e3:.2f} ({t[1] * 1e3:.2f})"
    lines = ["## Emulator prediction time", ""]
    lines += machine_lines()
    lines += [f"- network: {N_INPUTS} inputs, {N_HIDDEN} hidden GELU layers of width N, "
              f"{N_OUTPUTS} outputs, random weights; float64",
              f"- best repeat per call (median in brackets); single call: x of shape ({N_INPUTS},); "
              f"batch: x of shape ({batch}, {N_INPUTS}){'; --quick run' if quick else ''}",
              "- bare: plain NumPy forward pass to arsinh magnitudes (normalise, x @ W + b, GELU tanh "
              "eq. 6, linear, denormalise); predict_maggies adds input checks and the "
              "conversion to maggies",
              f"- target: single-call predict_maggies / bare <= {TARGET_RATIO}", ""]
    cells = []
    for width, (bare, mags, maggies), (bbare, bmaggies) in rows:
        ratio = maggies[0] / bare[0]
        flag = "" if ratio <= TARGET_RATIO else " (misses target)"
        cells.append([width, us(bare), us(mags), us(maggies), f"{ratio:.2f}{flag}", ms(bbare),
                      ms(bmaggies), f"{bmaggies[0] / bbare[0]:.2f}",
                      f"{bmaggies[0] / batch * 1e6:.3f}"])
    return lines + markdown_table(
        ["N", "single bare (us)", "single predict_mags (us)", "single predict_maggies (us)",
         "ratio maggies/bare", "batch bare (ms)", "batch predict_maggies (ms)", "batch ratio",
         "batch per object (us)"], cells, "rrrrrrrrr")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer and shorter repeats (a rough check, not for reporting)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the Markdown table here")
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS),
                        help=f"hidden-layer widths N (default: {' '.join(map(str, WIDTHS))})")
    parser.add_argument("--batch", type=int, default=BATCH,
                        help=f"rows of the batched prediction (default {BATCH})")
    args = parser.parse_args(argv)
    if args.batch < 1 or any(w < 1 for w in args.widths):
        parser.error("--batch and --widths must be positive")
    emit(markdown(run(args.widths, args.batch, args.quick), args.batch, args.quick), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
