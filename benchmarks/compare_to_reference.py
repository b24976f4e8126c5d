"""Exact fits of the validation mocks against a slice-sampled dynesty reference (issue 13).

Issue 13's agreement target: on at least 20 mocks of ``docs/validation_run/``, the
default sampler's medians differ from a high-n_live dynesty reference by no more
than two independent dynesty runs differ from each other (68th percentile of
|difference of medians| per parameter), and its 16-84% widths agree with the
reference's within 10% (median ratio over the mocks).

The reference is made by ``validate_posteriors.py`` (dynesty with ``--sample
rslice``: slice sampling, 3 + ndim slices, instead of the demo's random walk);
the candidate and the floor are two other runs of that script on the same mocks
(``emu1`` and ``emu2``: two fits of each mock).  Every fit read must be of the same
emulator file.

    python benchmarks/validate_posteriors.py --out docs/validation_reference \\
        --mocks-from docs/validation_run/mocks.json --n-galaxies 20 --kinds emu1 \\
        --sample rslice --nlive 500 --n-effective 4000
    python benchmarks/compare_to_reference.py --reference docs/validation_reference \\
        --candidate docs/validation_run_smc --floor docs/validation_run \\
        --out docs/samplers/agreement_with_reference.md
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402
from validate_posteriors import (COMPARED, UNRECORDED_NESTED, pair_statistics,  # noqa: E402
                                 read_run)

#: the widths agree when the median ratio is within this fraction of 1
WIDTH_TOLERANCE = 0.10


def _settings(fits):
    """How a run's fits were made, in words (sampler and dynesty settings)."""
    kinds = set()
    for fit in fits.values():
        nested = fit.get("nested")
        words = fit.get("sampler", "dynesty")
        if words == "dynesty":
            nested = nested or UNRECORDED_NESTED
            words += (f" {nested['nested_sample']}, nlive {nested['nested_nlive_init']}, "
                      f"target n_eff {nested['nested_target_n_effective']}")
        elif "settings" in fit:  # recorded since this script exists
            words += " (" + ", ".join(f"{k} {v}" for k, v in sorted(fit["settings"].items())) + ")"
        else:
            words += " (settings not recorded)"
        kinds.add(words)
    return "; ".join(sorted(kinds))


def compare(reference, candidate, floor):
    """Rows of the comparison and the verdicts, per parameter of ``COMPARED``.

    Parameters
    ----------
    reference, candidate, floor : dict
        Fits of three runs, ``{(mock id, kind): fit}`` (:func:`read_run`); the
        reference's ``emu1`` fits, both fits of the candidate and of the floor.

    Returns
    -------
    rows : list of list
        Table cells: parameter, pair, N, 68th percentile of |difference of
        medians|, median width ratio.
    verdicts : dict
        Per parameter key: ``diff68`` and ``width_ratio`` (each a list: the
        candidate's first and second fit against the reference), ``floor68``
        (floor emu1 vs emu2 on the same mocks) and the two booleans
        ``medians_met`` and ``widths_met`` (met by both of the candidate's fits).
    """
    ids = sorted(i for (i, kind) in reference if kind == "emu1"
                 and (i, "emu1") in candidate and (i, "emu1") in floor and (i, "emu2") in floor)
    if not ids:
        raise SystemExit("no mock has a reference fit, a candidate fit and two floor fits")
    pairs = {
        "candidate vs reference": (candidate, "emu1", reference, "emu1"),
        "candidate, second fit vs reference": (candidate, "emu2", reference, "emu1"),
        "candidate: first vs second fit": (candidate, "emu1", candidate, "emu2"),
        "floor, first fit vs reference": (floor, "emu1", reference, "emu1"),
        "floor: first vs second fit": (floor, "emu1", floor, "emu2"),
    }
    rows, verdicts = [], {}
    for key, label in COMPARED:
        stats = {}
        for name, (run_a, kind_a, run_b, kind_b) in pairs.items():
            use = [i for i in ids if (i, kind_a) in run_a and (i, kind_b) in run_b]
            stats[name] = pair_statistics([run_a[(i, kind_a)] for i in use],
                                          [run_b[(i, kind_b)] for i in use], key)
            rows.append([label, name, stats[name]["n"], f"{stats[name]['diff68']:.3f}",
                         f"{stats[name]['width_ratio']:.2f}"])
        checked = [stats["candidate vs reference"], stats["candidate, second fit vs reference"]]
        floor68 = stats["floor: first vs second fit"]["diff68"]
        verdicts[key] = {"diff68": [c["diff68"] for c in checked], "floor68": floor68,
                         "width_ratio": [c["width_ratio"] for c in checked],
                         "medians_met": all(bool(c["diff68"] <= floor68) for c in checked),
                         "widths_met": all(bool(abs(c["width_ratio"] - 1) <= WIDTH_TOLERANCE)
                                           for c in checked)}
    return rows, verdicts, ids


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True, help="run folder of the reference fits")
    p.add_argument("--candidate", required=True, help="run folder of the sampler compared")
    p.add_argument("--floor", required=True,
                   help="run folder of two dynesty fits per mock (the issue's floor)")
    p.add_argument("--out", help="also write the Markdown report here")
    args = p.parse_args(argv)
    runs = {name: read_run(getattr(args, name)) for name in ("reference", "candidate", "floor")}
    emulators = {f.get("emulator_sha256") for run in runs.values() for f in run.values()}
    if len(emulators) != 1:
        raise SystemExit(f"the runs' fits are of {len(emulators)} emulator files; compare fits "
                         "of one emulator")
    rows, verdicts, ids = compare(runs["reference"], runs["candidate"], runs["floor"])
    given = " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# Exact fits against a slice-sampled dynesty reference", "",
             f"Command: `python benchmarks/compare_to_reference.py {given}` "
             f"({len(ids)} validation mocks with all fits).", ""]
    for name in ("reference", "candidate", "floor"):
        lines.append(f"- {name}: `{os.path.relpath(getattr(args, name))}`, "
                     f"{_settings(runs[name])}")
    lines += ["", "Columns: 68th percentile over the mocks of |difference of medians| "
              "(dex; Gyr for the age), and the median over the mocks of the first fit's 16-84% "
              "width over the second's.", ""]
    lines += markdown_table(["quantity", "pair", "N", "68th pct |diff of medians|",
                             "width ratio"], rows, "llrrr")
    lines += ["", f"Targets, for each of the candidate's two fits: against the reference no "
              f"larger than the floor's two fits, and the width ratio within "
              f"{WIDTH_TOLERANCE:.0%} of 1 (the row 'candidate: first vs second fit' shows how "
              "much these statistics of two fits of the same sampler scatter over the mocks).",
              ""]
    lines += markdown_table(
        ["quantity", "medians: candidate (first, second fit) vs reference / floor", "met",
         "width ratio (first, second fit)", "met"],
        [[label, ", ".join(f"{d:.3f}" for d in verdicts[key]["diff68"])
          + f" / {verdicts[key]['floor68']:.3f}",
          "yes" if verdicts[key]["medians_met"] else "no",
          ", ".join(f"{w:.2f}" for w in verdicts[key]["width_ratio"]),
          "yes" if verdicts[key]["widths_met"] else "no"]
         for key, label in COMPARED], "llrrr")
    lines += ["", "Machine:", ""] + machine_lines()
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
