"""Posteriors of the same calibration mocks from different samplers, side by side.

For every mock fitted in the reference folder and in another folder of
``calibrate_sampler.py`` (same mocks: same emulator, seed and noise), the largest
|median difference| over the parameters in the reference's half-widths (16-84%),
the parameter where it is, and the range of the width ratios.  A well-converged
sampler should agree with a much longer run of another (or the same) algorithm to
a fraction of a half-width.  Then, per compared folder, per parameter over the
common mocks: the 68th percentile of |median difference| in reference
half-widths and the median width ratio; per compared folder, the mean width
ratio over all (mock, parameter) pairs (its error from the spread of the per-mock
means; against a converged reference, below 1 means intervals too narrow), the
lowest per-parameter mean, the rms median difference, calls and seconds per fit;
and every run's pooled coverage of the
68% and 95% intervals with its error (the spread of per-mock coverage over the
mocks / sqrt(n), which allows for the correlation of one mock's parameters).

    python benchmarks/compare_sbc_runs.py runs/sbc_thorough runs/sbc_nss runs/sbc_ultranest
    python benchmarks/compare_sbc_runs.py runs/smc_converged runs/smc_a runs/smc_b \
        --title "Widths against a converged run" --note "..." --out widths.md

Run labels show the sampler settings a run was given (``--sampler-settings``), not
the defaults in force when it ran: say which those were with ``--note``.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import dynesty_sampling, emit, machine_lines, markdown_table  # noqa: E402


def load(folder):
    """{mock index: record} of a calibrate_sampler.py folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("mock_") and name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                record = json.load(f)
            out[record["index"]] = record
    if not out:
        raise SystemExit(f"no fitted mocks in {folder}")
    return out


def describe(record):
    s = record["settings"]
    extra = s.get("sampler_settings")
    return (s["sampler"] + (f" nlive {s['nlive']}" if s.get("nlive") else "")
            + (f" {json.dumps(extra)}" if extra else "")
            + ("" if s["sampler"] != "dynesty"
               else f" {dynesty_sampling(s['sample'], s['walks'])}"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", help="calibrate_sampler.py folder of the reference run")
    p.add_argument("others", nargs="+", help="folders of the runs compared with it")
    p.add_argument("--out")
    p.add_argument("--title", help="a Markdown heading for the report, followed by the "
                                   "machine line of the machine the report is made on (run it "
                                   "where the fits ran)")
    p.add_argument("--no-per-mock", action="store_true",
                   help="leave out the table of every (mock, run) pair (hundreds of rows for "
                        "300-mock runs); the summaries stay")
    p.add_argument("--note", help="a paragraph after the heading (e.g. the defaults of the "
                                  "time of each run, which the run labels do not show)")
    args = p.parse_args(argv)
    ref = load(args.reference)
    any_ref = next(iter(ref.values()))
    others = {folder: load(folder) for folder in args.others}
    rows = []
    for folder, other in others.items():
        for i in sorted(set(ref) & set(other)):
            a, b = ref[i], other[i]
            if a["settings"].get("emulator_checksum") != b["settings"].get("emulator_checksum"):
                raise SystemExit(f"mock {i}: {folder} used another emulator than {args.reference}")
            half = np.asarray(a["halfwidth"])
            shift = np.abs(np.asarray(b["median"]) - np.asarray(a["median"])) / half
            ratio = np.asarray(b["halfwidth"]) / half
            k = int(np.argmax(shift))
            rows.append([str(i), describe(b), f"{b['ncall']:.3g}", f"{shift[k]:.2f}",
                         a["labels"][k], f"{ratio.min():.2f}-{ratio.max():.2f}",
                         f"{b['hpd_rank']:.2f}" if b.get("hpd_rank") is not None else "-"])
    if not rows:
        raise SystemExit("no mock is fitted in both the reference and another folder")
    summary = ["", *width_summary(ref, others)]
    for folder, other in others.items():
        summary += [""] + per_parameter_agreement(ref, other, folder)
    summary += [""] + [f"- {folder}: {pooled_coverage(recs)}"
                       for folder, recs in [(args.reference, ref), *others.items()]
                       if all("in68" in r for r in recs.values())]
    ranks = ", ".join(f"{i}: {r['hpd_rank']:.2f}" for i, r in sorted(ref.items())
                      if r.get("hpd_rank") is not None)
    starts = "; ".join(f"mock {i}: its two starts differ by up to "
                       f"{r['starts_disagree_halfwidths']:.2f} half-widths "
                       f"({r['starts_disagree_where']})"
                       for i, r in sorted(ref.items()) if "starts_disagree_halfwidths" in r)
    head = [f"# {args.title}", "", *machine_lines(), ""] if args.title else []
    head += [args.note, ""] if args.note else []
    lines = [*head, f"Reference: {describe(any_ref)} ({args.reference})"
             + (f"; its hpd rank of the truth per mock: {ranks}"
                if ranks and not args.no_per_mock else "")
             + (f"; {starts}" if starts else ""),
             "",
             *([] if args.no_per_mock else
               markdown_table(["mock", "run", "calls", "max |dmedian| (ref half-widths)",
                               "where", "width / ref", "hpd rank of the truth"], rows,
                              "llrrlrr")), *summary]
    emit(lines, args.out)


def width_summary(ref, others):
    """Markdown lines: one row per compared run over the mocks it shares with the
    reference: the mean over (mock, parameter) of its half-width / the reference's
    (with its standard error), the lowest per-parameter mean, the rms of
    |median difference| in reference half-widths, and the median calls and seconds
    per fit.  Against a converged reference, a mean ratio below 1 is a sampler that
    makes its intervals too narrow (and under-covers)."""
    rows = []
    for folder, other in others.items():
        common = sorted(set(ref) & set(other))
        if not common:
            rows.append([folder, "0", "-", "-", "-", "-", "-"])
            continue
        ratio = np.array([np.asarray(other[i]["halfwidth"]) / np.asarray(ref[i]["halfwidth"])
                          for i in common])
        shift = np.array([np.subtract(other[i]["median"], ref[i]["median"])
                          / np.asarray(ref[i]["halfwidth"]) for i in common])
        per_parameter = ratio.mean(axis=0)
        k = int(np.argmin(per_parameter))
        rows.append([f"{describe(other[common[0]])} ({os.path.basename(folder.rstrip('/'))})",
                     str(len(common)),
                     f"{ratio.mean():.3f} +- {_error_over_mocks(ratio.mean(axis=1))}",
                     f"{per_parameter[k]:.3f} ({ref[common[0]]['labels'][k]})",
                     f"{np.sqrt(np.mean(shift ** 2)):.3f}",
                     f"{np.median([other[i]['ncall'] for i in common]):.3g}",
                     f"{np.median([other[i]['seconds'] for i in common]):.1f}"])
    return ["Widths against the reference (mean over the common mocks and parameters):", "",
            *markdown_table(["run", "mocks", "half-width / ref", "lowest parameter",
                             "rms dmedian (ref half-widths)", "calls", "s per fit"],
                            rows, "lrrlrrr")]


def _error_over_mocks(per_mock):
    """Standard error of a mean over mocks (the parameters of one mock are correlated,
    so the mocks, not the (mock, parameter) pairs, are the independent draws)."""
    if len(per_mock) < 2:
        return "nan"
    return f"{np.std(per_mock, ddof=1) / np.sqrt(len(per_mock)):.3f}"


def per_parameter_agreement(ref, other, folder):
    """Markdown lines: per parameter, the 68th percentile over the common mocks of
    |median - reference median| / reference half-width, and the median width ratio."""
    common = sorted(set(ref) & set(other))
    if not common:
        return [f"{folder}: no mock in common with the reference"]
    shift = np.array([np.abs(np.subtract(other[i]["median"], ref[i]["median"]))
                      / np.asarray(ref[i]["halfwidth"]) for i in common])
    ratio = np.array([np.asarray(other[i]["halfwidth"]) / np.asarray(ref[i]["halfwidth"])
                      for i in common])
    labels = ref[common[0]]["labels"]
    rows = [[label, f"{np.percentile(shift[:, k], 68):.2f}", f"{np.median(ratio[:, k]):.2f}"]
            for k, label in enumerate(labels)]
    return [f"{folder} against the reference, {len(common)} mocks:", "",
            *markdown_table(["parameter", "68th pct \\|dmedian\\| (ref half-widths)",
                             "median width / ref"], rows, "lrr")]


def pooled_coverage(recs):
    """The pooled 68% / 95% coverage of one run, with errors, as text."""
    in68 = np.array([np.mean(r["in68"]) for r in recs.values()])
    in95 = np.array([np.mean(r["in95"]) for r in recs.values()])
    n = len(in68)
    err = (lambda v: 100 * v.std(ddof=1) / np.sqrt(n)) if n > 1 else (lambda v: float("nan"))
    return (f"{n} mocks, pooled coverage {100 * in68.mean():.1f} +- {err(in68):.1f}% (68%), "
            f"{100 * in95.mean():.1f} +- {err(in95):.1f}% (95%)")


if __name__ == "__main__":
    main()
