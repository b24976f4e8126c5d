"""Summarise an emulator's evaluation report against the shipped-emulator targets.

Reads ``residuals.json`` written by ``prospect-emulator evaluate EMU TEST.h5 --report DIR``,
times a single-call ``predict_maggies`` of the emulator, and writes Markdown:
targets (residual std <= 0.05 mag in every filter, median <= 0.02 mag, single call
< 100 us), then the per-filter table sorted by effective wavelength.

    python benchmarks/default_emulator_summary.py prospect_emulator/data/default_emulator.h5 \
        docs/default_emulator --out docs/default_emulator/summary.md
"""
import argparse
import json
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

from prospect_emulator import load_emulator  # noqa: E402

TARGET_MAX, TARGET_MEDIAN, TARGET_US = 0.05, 0.02, 100.0


def single_call_us(emu, repeats=7, number=2000):
    """Best-of-``repeats`` time of one predict_maggies call (microseconds)."""
    lo, hi = emu.param_ranges[:, 0], emu.param_ranges[:, 1]
    x = 0.5 * (lo + hi)
    return min(timeit.repeat(lambda: emu.predict_maggies(x), repeat=repeats, number=number)) / number * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("emulator")
    p.add_argument("report_dir")
    p.add_argument("--out", help="also write the Markdown here")
    args = p.parse_args(argv)
    emu = load_emulator(args.emulator)
    with open(os.path.join(args.report_dir, "residuals.json")) as f:
        rep = json.load(f)
    rows = sorted(rep["filters"], key=lambda r: r["wave_eff_angstrom"])
    std = np.array([r["std"] for r in rows])
    us = single_call_us(emu)
    ok = lambda cond: "yes" if cond else "**no**"  # noqa: E731
    prov = emu.provenance
    lines = [f"Emulator: `{os.path.basename(args.emulator)}`, {emu!r}; trained on "
             f"{prov.get('n_train', prov.get('training_rows', '?'))} models "
             f"(SPS: {prov.get('sps', '?')}); test set: {rep['n_rows']} held-out models "
             f"({rep['selection']}).", "", *machine_lines(), "",
             *markdown_table(["target", "value", "met"], [
                 ["residual std <= 0.05 mag in every filter", f"max {std.max():.4f} mag "
                  f"({rows[int(std.argmax())]['filter']})", ok(std.max() <= TARGET_MAX)],
                 ["median residual std <= 0.02 mag", f"{np.median(std):.4f} mag",
                  ok(np.median(std) <= TARGET_MEDIAN)],
                 ["single-call prediction < 100 us", f"{us:.1f} us", ok(us < TARGET_US)],
             ], "lll"), "",
             f"Filters below 0.05 mag: {int(np.sum(std <= TARGET_MAX))} of {len(std)}; "
             f"below 0.02 mag: {int(np.sum(std <= TARGET_MEDIAN))}. Largest |bias|: "
             f"{rep['summary']['abs_bias_max']:.4f} mag. Largest off-diagonal residual correlation: "
             f"{rep['summary']['max_abs_offdiagonal_correlation']:.2f}.", ""]
    extras = rep.get("extras") or {}
    if extras:
        lines += [f"Extra outputs: {json.dumps(extras)}", ""]
    lines.extend(markdown_table(
        ["filter", "lambda_eff (um)", "bias (mag)", "std (mag)", "-3 sigma q", "+3 sigma q"],
        [[r["filter"], f"{r['wave_eff_angstrom'] / 1e4:.3f}", f"{r['bias']:+.4f}", f"{r['std']:.4f}",
          f"{r['q_m3sigma']:+.3f}", f"{r['q_p3sigma']:+.3f}"] for r in rows], "lrrrrr"))
    emit(lines, args.out)


if __name__ == "__main__":
    main()
