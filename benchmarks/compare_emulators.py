"""Two emulator files side by side: single-call and batched prediction time in one
run, and how far each one's float32 forward pass is from its float64 pass.

Issue 10's speed target for a retrained emulator is relative: its single-call
``predict_maggies`` (the call a sampler's likelihood makes) at most 60% of the
previous emulator's, measured on the same machine in the same run.  Both
emulators (and their float32 forward passes, :meth:`Emulator.as_float32`) are
timed in alternating repeats, so that a busy machine slows all alike.  The
float32 difference is the largest |arsinh mag| difference from float64 over
``--n-draws`` draws uniform in each emulator's training ranges (allowed: 1e-4
mag).

    python benchmarks/compare_emulators.py OLD.h5 NEW.h5 --out report.md
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402
from bench_emulator import time_alternating  # noqa: E402

from prospect_emulator import load_emulator  # noqa: E402
from prospect_emulator.runtime.emulator import (FLOAT32_MAX_MAG_DIFFERENCE,  # noqa: E402
                                                float32_check, training_range_draws)

TARGET_RATIO = 0.6


def draws(emu, n, seed):
    return training_range_draws(emu, n, np.random.default_rng(seed))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the emulator of today")
    p.add_argument("new", help="the candidate")
    p.add_argument("--n-draws", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--out")
    args = p.parse_args(argv)
    emus = {}
    for label, path in (("old", args.old), ("new", args.new)):
        e = load_emulator(path)
        emus[f"{label} float64"], emus[f"{label} float32"] = e, e.as_float32()
    single = dict(zip(emus, time_alternating(
        [(lambda e=e, x=draws(e, 1, 0)[0]: e.predict_maggies(x)) for e in emus.values()],
        args.repeat, 0.2)))
    batched = dict(zip(emus, time_alternating(
        [(lambda e=e, x=draws(e, args.batch, 1): e.predict_maggies(x)) for e in emus.values()],
        max(3, args.repeat // 3), 0.0)))
    f32 = {label: float32_check(emus[f"{label} float64"], args.n_draws, seed=2)["max_mag_difference"]
           for label in ("old", "new")}
    base = single["old float64"][0]
    rows = [[label, os.path.basename(args.old if label.startswith("old") else args.new),
             f"{emus[label].width}", f"{t[0] * 1e6:.1f} ({t[1] * 1e6:.1f})",
             f"{t[0] / base:.2f}", f"{batched[label][0] / args.batch * 1e6:.3f}",
             "-" if label.endswith("64") else f"{f32[label.split()[0]]:.1e}"]
            for label, t in single.items()]
    lines = ["## Emulators side by side", "", *machine_lines(), "",
             f"Single call: one parameter vector, best repeat of {args.repeat} (median in "
             f"brackets); batch: {args.batch:,} vectors, per vector. float32 max |dmag|: over "
             f"{args.n_draws:,} draws uniform in the training ranges (allowed "
             f"{FLOAT32_MAX_MAG_DIFFERENCE:g} mag).", "",
             *markdown_table(["forward pass", "file", "width", "single call (us)",
                              "/ old float64", "batch (us per vector)", "float32 max |dmag|"],
                             rows, "llrrrrr"), ""]
    best = min((t[0], label) for label, t in single.items() if label.startswith("new")
               and (label.endswith("64") or f32["new"] <= FLOAT32_MAX_MAG_DIFFERENCE))
    lines.append(f"Fastest allowed new pass: {best[1]}, {best[0] / base:.2f} of the old float64 "
                 f"single call (target <= {TARGET_RATIO}: "
                 f"{'met' if best[0] / base <= TARGET_RATIO else 'not met'}).")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
