"""Test-set precision of an emulator as a function of the source's brightness.

The paper's precision (the standard deviation of the arsinh-magnitude
residuals over the whole held-out test set) mixes bright and very faint
models: with mu0 = 35 (eq. 2) residuals of sources fainter than ~33 mag are
compressed by the softening, and test sets drawn from the training
distributions (log M down to 6 at z up to 3) hold many of them. This script
reports, per filter, the residual standard deviation over all held-out rows
(the paper's number, as ``prospect-emulator evaluate`` reports it) and over
the rows brighter than given magnitudes in that filter (what a survey
detects).  For a mass-normalised emulator it also gives the scatter in the
network's own unit-mass arsinh magnitudes (softening ``mass_mu0``): the
fractional error that ``EmulatorNoiseModel`` assigns at every flux, while it
uses the stored (output-magnitude) ``residual_sigma``.

    python benchmarks/precision_by_brightness.py EMU.h5 TRAIN.h5 --out report.md
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, markdown_table  # noqa: E402


def precision_by_brightness(emulator, training_set, limits=(28.0, 25.0)):
    """(filter names, std over all rows, {limit: (std, n rows)}, fraction fainter than
    33 mag, std in unit-mass magnitudes or None).

    Parameters
    ----------
    emulator : Emulator or StitchedEmulator
    training_set : str
        The emulator's own training file (only its held-out test rows are used),
        or a fresh test set made with another seed (every row is used).
    limits : sequence of float
        Arsinh AB magnitudes: rows brighter than each, per filter.
    """
    from prospect_emulator.training.evaluate import (_held_out_rows, noise_model_residuals,
                                                     read_training_rows)
    data = read_training_rows(training_set)
    held_out = _held_out_rows(emulator, data)
    if held_out is None:  # a fresh test set the emulator never saw: every row
        held_out = np.arange(len(data))
    params = data.params[held_out][:, [data.param_names.index(p) for p in emulator.param_names]]
    mags = data.mags[held_out][:, [data.filter_names.index(f) for f in emulator.filter_names]]
    residuals = emulator.predict_mags(params, check=False) - mags
    unit_std = None
    if getattr(emulator, "mass_param", None) is not None:
        unit_std = noise_model_residuals(emulator, params, mags).std(axis=0)
    by_limit = {}
    for limit in limits:
        bright = mags < limit
        std = np.array([residuals[bright[:, j], j].std() if bright[:, j].sum() > 1 else np.nan
                        for j in range(mags.shape[1])])
        by_limit[limit] = (std, bright.sum(axis=0))
    return (emulator.filter_names, residuals.std(axis=0), by_limit, float(np.mean(mags > 33)),
            unit_std)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("emulator")
    parser.add_argument("training_set")
    parser.add_argument("--limits", default="28,25", help="magnitude limits, comma-separated")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    from prospect_emulator import load_emulator
    limits = [float(v) for v in args.limits.split(",")]
    emulator = load_emulator(args.emulator)
    names, std_all, by_limit, faint, unit_std = precision_by_brightness(
        emulator, args.training_set, limits)
    lines = [f"Emulator `{os.path.basename(args.emulator)}`, held-out rows of "
             f"`{os.path.basename(args.training_set)}`; {100 * faint:.0f}% of the (row, filter) "
             "pairs are fainter than 33 arsinh mag.", ""]
    summary = [["all held-out rows (the paper's measure)", f"{np.median(std_all):.4f}",
                f"{np.max(std_all):.4f}", str(int((std_all > 0.05).sum()))]]
    for limit in limits:
        std, _ = by_limit[limit]
        summary.append([f"rows brighter than {limit:g} mag in the filter", f"{np.nanmedian(std):.4f}",
                        f"{np.nanmax(std):.4f}", str(int((std > 0.05).sum()))])
    if unit_std is not None:
        summary.append(["all held-out rows, unit-mass magnitudes (the network's own error)",
                        f"{np.median(unit_std):.4f}", f"{np.max(unit_std):.4f}",
                        str(int((unit_std > 0.05).sum()))])
    lines += markdown_table(["rows", "median std over filters (mag)", "largest std (mag)",
                             "filters above 0.05 mag"], summary, "lrrr")
    if unit_std is not None:
        stored = emulator.residual_sigma
        lines += ["", "The emulator is mass-normalised: `EmulatorNoiseModel` treats the stored "
                  "`residual_sigma` as a fractional error at every flux; the network's own "
                  "fractional error is the unit-mass row, "
                  f"{np.median(unit_std / stored):.2f}x the stored sigma in the median filter "
                  f"(range {np.min(unit_std / stored):.2f}-{np.max(unit_std / stored):.2f}x; "
                  f"stored: {emulator.provenance.get('residual_stats_magnitudes', 'output arsinh magnitudes (mu0), files before issue 10')})."]
    lines += [""]
    header = ["filter", "std, all rows"] + [x for limit in limits
                                            for x in (f"std, < {limit:g} mag", f"rows < {limit:g}")]
    header += ["std, unit-mass mags"] if unit_std is not None else []
    rows = []
    for j, name in enumerate(names):
        row = [name, f"{std_all[j]:.4f}"]
        for limit in limits:
            std, n = by_limit[limit]
            row += [f"{std[j]:.4f}", str(int(n[j]))]
        row += [f"{unit_std[j]:.4f}"] if unit_std is not None else []
        rows.append(row)
    lines += markdown_table(header, rows, "l" + "r" * (len(header) - 1))
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
