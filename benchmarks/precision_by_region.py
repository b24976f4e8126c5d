"""Test-set precision of an emulator inside regions of its input space.

The stored residual sigma (the paper's measure) is one number per filter over
the whole training distribution; near the edges of some inputs the error is
larger.  This prints the residual standard deviation per region.

    python benchmarks/precision_by_region.py EMU.h5 TEST.h5 \
        --region "dust2<0.1" --region "dust2<0.1,logtau<-0.5" --filters spitzer_irac_ch4,sdss_r0
"""
import argparse
import operator
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_lines  # noqa: E402

from prospect_emulator import load_emulator  # noqa: E402
from prospect_emulator.training.trainingset import read_training_set  # noqa: E402

_OPS = {"<": operator.lt, ">": operator.gt}


def region_mask(spec, columns):
    """Rows satisfying ``"p<v,q>w"`` (comma = and)."""
    mask = np.ones(len(next(iter(columns.values()))), bool)
    for term in filter(None, spec.split(",")):
        op = "<" if "<" in term else ">"
        name, value = term.split(op)
        if name not in columns:
            raise SystemExit(f"unknown input {name!r} in region {spec!r}; inputs: {list(columns)}")
        mask &= _OPS[op](columns[name], float(value))
    return mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emulator")
    parser.add_argument("test_set", help="a test set the emulator never saw (all rows used)")
    parser.add_argument("--region", action="append", default=[])
    parser.add_argument("--filters", default="", help="comma-separated filters to show")
    args = parser.parse_args()
    emu = load_emulator(args.emulator)
    data = read_training_set(args.test_set)
    names, fnames = list(data["param_names"]), list(data["filter_names"])
    x = data["params"][:, [names.index(p) for p in emu.param_names]]
    mags = data["mags"][:, [fnames.index(f) for f in emu.filter_names]]
    residuals = emu.predict_mags(x, check=False) - mags
    columns = {p: x[:, j] for j, p in enumerate(emu.param_names)}
    shown = [f for f in args.filters.split(",") if f]
    print("\n".join(machine_lines()))
    print(f"\nemulator {os.path.basename(args.emulator)}, test set "
          f"{os.path.basename(args.test_set)} ({len(x)} rows)\n")
    head = "| region | rows | median std over filters (mag) | largest std (mag) |"
    print(head + "".join(f" {f} std |" for f in shown))
    print("|---|---:|---:|---:|" + "---:|" * len(shown))
    for spec in ["", *args.region]:
        m = region_mask(spec, columns)
        std = residuals[m].std(axis=0)
        cells = "".join(f" {std[emu.filter_names.index(f)]:.4f} |" for f in shown)
        print(f"| {spec or 'all'} | {m.sum()} | {np.median(std):.4f} | {std.max():.4f} |" + cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
