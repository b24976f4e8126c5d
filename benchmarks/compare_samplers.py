"""Every sampler side by side on the example galaxy (issue 13).

The demo's galaxy (``prospect_emulator/data/example_galaxy.ecsv``) and model
(the shipped ``default`` emulator, 14 free parameters, 5% noise floor), fitted
in one run by every sampler of :func:`prospect_emulator.fitting.samplers.run_sampler`
with one or more seeds each; reported per run: likelihood calls, wall time,
and agreement of the per-parameter medians and 16-84% widths

* with a high-n_live dynesty reference (``--reference``): the largest
  |median - reference median| over the 14 parameters in units of the
  reference's half-width (half the 16-84% interval), and the range of
  width / reference width;
* between two seeds of the same sampler and settings: the largest
  |median difference| in units of the mean half-width (issue 13's target for
  the new default: <= 0.3).

Every run is one JSON file in ``--out`` (resumable: kill and re-run; a run is
identified by its label and seed), the report is ``--out``/report.md::

    python benchmarks/compare_samplers.py --out runs/samplers --seeds 1 2
    python benchmarks/compare_samplers.py --out runs/samplers --report-only

Runs are sequential (the timings are wall time of one process; ``dynesty-pool``
uses two).  Choose the samplers and their settings with ``--only`` and the
``CONFIGS`` table below; ``--quick`` runs every sampler once at small settings
(a smoke test, not a measurement).
"""
import argparse
import json
import os
import sys
import time
import warnings

# One BLAS thread (set before NumPy loads): the samplers' batches are small (tens of
# rows), where a second BLAS thread costs more than it gains, many times more on a
# loaded machine.  Override with OPENBLAS_NUM_THREADS=2 etc.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, machine_lines, markdown_table  # noqa: E402

from prospect_emulator.fileio import atomic_path  # noqa: E402

#: label -> (sampler, settings).  The demo's dynesty settings first (the
#: baseline of the speed target), the others at settings chosen here.
CONFIGS = {
    "dynesty demo": ("dynesty", {"nlive": 200, "n_effective": 2000}),
    "dynesty rwalk100": ("dynesty", {"nlive": 400, "n_effective": 5000, "walks": 100}),
    "dynesty-pool demo": ("dynesty-pool", {"nlive": 200, "n_effective": 2000}),
    "ultranest": ("ultranest", {"nlive": 400, "min_ess": 2000}),
    "emcee": ("emcee", {}),
    "smc": ("smc", {}),
    "smc no final move": ("smc", {"final_chain_length": None}),
    "blackjax-nss": ("blackjax-nss", {"nlive": 500, "num_delete": 50, "space": "unit-cube"}),
    "blackjax-nss normal": ("blackjax-nss", {"nlive": 500, "num_delete": 50, "space": "normal",
                                             "nsteps": 28}),
    "blackjax-nss normal 56": ("blackjax-nss", {"nlive": 500, "num_delete": 50,
                                                "space": "normal", "nsteps": 56}),
    "blackjax-nuts": ("blackjax-nuts", {}),
    "blackjax-nuts dense": ("blackjax-nuts", {"mass_matrix": "dense"}),
}
#: The reference run (label "reference"): high n_live dynesty with long random walks.
REFERENCE = ("dynesty", {"nlive": 1000, "n_effective": 10000, "walks": 100})
#: Small settings of --quick (a smoke test).
QUICK = {
    "dynesty demo": ("dynesty", {"nlive": 50, "n_effective": 300, "maxcall": 60000}),
    "dynesty-pool demo": ("dynesty-pool", {"nlive": 50, "n_effective": 300, "maxcall": 60000}),
    "ultranest": ("ultranest", {"nlive": 60, "min_ess": 300, "max_ncalls": 300000}),
    "emcee": ("emcee", {"min_steps": 1000, "max_steps": 4000}),
    "smc": ("smc", {"n_particles": 2000, "chain_length": 20, "final_chain_length": 100}),
    "blackjax-nss": ("blackjax-nss", {"nlive": 60, "num_delete": 10, "space": "unit-cube"}),
    "blackjax-nss normal": ("blackjax-nss", {"nlive": 60, "num_delete": 10, "space": "normal"}),
    "blackjax-nuts": ("blackjax-nuts", {"num_chains": 2, "num_warmup": 100, "num_samples": 100}),
}
QUICK_REFERENCE = ("dynesty", {"nlive": 100, "n_effective": 1000})


def example_problem():
    """(model, obs, noise) of the demo: the example galaxy and the default emulator."""
    from prospect_emulator.data import DEFAULT_EMULATOR_PATH, EXAMPLE_GALAXY_PATH
    from prospect_emulator.fitting.catalog import CatalogColumns, read_catalog
    from prospect_emulator.fitting.models import build_fitting_model
    from prospect_emulator.fitting.run import make_obs
    from prospect_emulator.prospector import EmulatorNoiseModel
    from prospect_emulator.runtime import load_emulator
    emulator = load_emulator(DEFAULT_EMULATOR_PATH)
    records, filters = read_catalog(EXAMPLE_GALAXY_PATH, CatalogColumns(), emulator.filter_names)
    rec = records[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Student-t SFR-ratio priors beyond the training range
        model = build_fitting_model(emulator, zred=rec["zred"])
    obs = make_obs(filters, rec["maggies"], rec["maggies_unc"])
    return model, obs, EmulatorNoiseModel(model, floor=0.05)


def run_one(label, sampler, settings, seed, out):
    """Fit the example galaxy once; write and return the JSON record."""
    from prospect_emulator.fitting.quality import weighted_quantiles
    from prospect_emulator.fitting.samplers import run_sampler
    model, obs, noise = example_problem()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = run_sampler(sampler, model, obs, noise, seed=seed, **settings)
    q = weighted_quantiles(fit["samples"], fit["weights"], [0.16, 0.5, 0.84])
    record = {"label": label, "sampler": sampler, "seed": seed, "settings": fit["settings"],
              "given_settings": settings, "ncall": fit["ncall"], "seconds": fit["seconds"],
              "logz": fit["logz"], "labels": list(model.theta_labels()),
              "p16": q[0].tolist(), "median": q[1].tolist(), "p84": q[2].tolist(),
              "diagnostics": fit["diagnostics"], "n_samples": len(fit["samples"]),
              "warnings": sorted({str(w.message) for w in caught
                                  if issubclass(w.category, RuntimeWarning)
                                  and ("emcee" in str(w.message)
                                       or "chains disagree" in str(w.message))}),
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = os.path.join(out, f"{_slug(label)}_seed{seed}.json")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(record, f)
    return record


def _slug(label):
    return "".join(c if c.isalnum() else "_" for c in label)


def _halfwidth(r):
    return 0.5 * (np.asarray(r["p84"]) - np.asarray(r["p16"]))


def compare(records):
    """Table rows: one per (label, seed), plus the seed-to-seed agreement per label."""
    ref = [r for r in records if r["label"] == "reference"]
    ref = ref[0] if ref else None
    by_label = {}
    for r in records:
        by_label.setdefault(r["label"], []).append(r)
    rows = []
    for label, runs in by_label.items():
        runs.sort(key=lambda r: r["seed"])
        seed_shift = "-"
        if len(runs) >= 2:
            a, b = runs[0], runs[1]
            hw = 0.5 * (_halfwidth(a) + _halfwidth(b))
            shift = np.abs(np.asarray(a["median"]) - np.asarray(b["median"])) / hw
            worst = int(np.argmax(shift))
            seed_shift = f"{shift.max():.2f} ({a['labels'][worst]})"
        for r in runs:
            vs_ref = widths = "-"
            if ref is not None and r is not ref:
                hw_ref = _halfwidth(ref)
                shift = np.abs(np.asarray(r["median"]) - np.asarray(ref["median"])) / hw_ref
                worst = int(np.argmax(shift))
                vs_ref = f"{shift.max():.2f} ({r['labels'][worst]})"
                ratio = _halfwidth(r) / hw_ref
                widths = f"{ratio.min():.2f}-{ratio.max():.2f}"
            note = ""
            diag = r["diagnostics"]
            if r["sampler"] == "emcee":
                note = (f"{diag['chain_length_in_autocorr_times']:.0f} tau, "
                        f"tau_max {max(diag['autocorr_time']):.0f} steps"
                        + ("" if diag["converged"] else ", SHORT CHAIN"))
            rows.append([label, r["seed"], f"{r['ncall']:.3g}", f"{r['seconds']:.1f}",
                         f"{1e6 * r['seconds'] / max(r['ncall'], 1):.0f}", vs_ref, widths,
                         seed_shift if r is runs[0] else "", note])
    return rows


def report(out, records):
    lines = ["# Samplers on the example galaxy", "", *machine_lines(),
             "- load: shared machine (other jobs running); wall times are indicative only", ""]
    for label in dict.fromkeys(r["label"] for r in records):
        r = next(x for x in records if x["label"] == label)
        lines.append(f"- {label}: {r['sampler']} {json.dumps(r['given_settings'])}")
    lines.append("")
    lines += markdown_table(
        ["run", "seed", "calls", "wall s", "us/call", "max |dmedian| vs ref (half-widths)",
         "width / ref", "seed-to-seed max |dmedian| (half-widths)", "notes"],
        compare(records), "llrrrllll")
    spread = seed_spread(records)
    if spread:
        lines += ["", "Over three or more seeds (the scatter of each parameter's median, in "
                  "mean half-widths):", ""] + spread
    return emit(lines, os.path.join(out, "report.md"))


def seed_spread(records):
    """One line per label run with three or more seeds: the standard deviation of the
    medians over the seeds in mean half-widths (worst parameter, mean over parameters)
    and the largest |median difference| of any pair of seeds."""
    lines = []
    by_label = {}
    for r in records:
        if r["label"] != "reference":
            by_label.setdefault(r["label"], []).append(r)
    for label, runs in by_label.items():
        if len(runs) < 3:
            continue
        medians = np.array([r["median"] for r in runs])
        hw = np.mean([_halfwidth(r) for r in runs], axis=0)
        sd = medians.std(axis=0, ddof=1) / hw
        pairs = [np.max(np.abs(medians[i] - medians[j]) / hw)
                 for i in range(len(runs)) for j in range(i + 1, len(runs))]
        worst = int(np.argmax(sd))
        lines.append(f"- {label}, {len(runs)} seeds: sd of the medians {sd.max():.2f} "
                     f"({runs[0]['labels'][worst]}), mean over parameters {sd.mean():.2f}; "
                     f"worst of the {len(pairs)} seed pairs {max(pairs):.2f}; wall "
                     f"{np.mean([r['seconds'] for r in runs]):.1f} s on average")
    return lines


def load_records(out):
    records = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                records.append(json.load(f))
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder of the per-run JSON and report.md")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                        help=f"labels to run (default all): {', '.join(CONFIGS)}")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference run")
    parser.add_argument("--reference-settings", type=json.loads, default=None, metavar="JSON",
                        help="settings of the dynesty reference instead of "
                             f"{json.dumps(REFERENCE[1])}")
    parser.add_argument("--quick", action="store_true", help="small settings (smoke test)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.report_only:
        configs = dict(QUICK if args.quick else CONFIGS)
        if args.only:
            unknown = sorted(set(args.only) - set(configs))
            if unknown:
                parser.error(f"unknown label(s) {unknown}; known: {list(configs)}")
            configs = {k: configs[k] for k in args.only}
        todo = [(label, s, st, seed) for label, (s, st) in configs.items() for seed in args.seeds]
        if not args.no_reference:  # last: the samplers' own numbers come first
            sampler, settings = QUICK_REFERENCE if args.quick else REFERENCE
            todo.append(("reference", sampler, args.reference_settings or settings,
                         args.seeds[0]))
        for label, sampler, settings, seed in todo:
            path = os.path.join(args.out, f"{_slug(label)}_seed{seed}.json")
            if os.path.exists(path):
                continue
            print(f"{label} (seed {seed}) ...", flush=True)
            r = run_one(label, sampler, settings, seed, args.out)
            print(f"  {r['ncall']} calls, {r['seconds']:.1f} s", flush=True)
    report(args.out, load_records(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
