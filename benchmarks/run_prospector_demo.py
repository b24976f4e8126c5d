"""Run Prospector v1.4's own demo parameter file with the three documented edits.

    python benchmarks/run_prospector_demo.py PROSPECTOR/demo [--objid 0] [--sps-reference] [demo flags]

PROSPECTOR/demo is the ``demo/`` folder of a Prospector v1.4 checkout
(``demo_params.py`` and ``demo_photometry.dat``).  The script applies exactly the
edits of docs/replace_fsps.md (model class, ``build_sps``, ``build_noise``) to a copy,
plus one line that NumPy >= 2.3 needs in Prospector's own ``build_obs`` (``NUMPY_FIX``),
prints the diff, runs the copy as Prospector documents (``--dynesty``), and prints
the posterior of the demo galaxy from the results file Prospector wrote.
"""
import argparse
import difflib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

EDITS = [
    ("    model = sedmodel.SedModel(model_params)",
     "    from prospect_emulator import EmulatedSpecModel\n"
     "    model = EmulatedSpecModel(model_params)"),
    ("    from prospect.sources import CSPSpecBasis\n"
     "    sps = CSPSpecBasis(zcontinuous=zcontinuous,\n"
     "                       compute_vega_mags=compute_vega_mags)\n"
     "    return sps",
     "    from prospect_emulator import EmulatorSPS\n"
     "    return EmulatorSPS()"),
    ("def build_noise(**extras):\n    return None, None",
     "def build_noise(**extras):\n    from prospect_emulator import EmulatorNoiseModel\n"
     "    return None, EmulatorNoiseModel()"),
]


#: Not about the emulator: Prospector 1.4's demo converts a 1-element array with int(),
#: which NumPy >= 2.3 refuses (TypeError) before any model is built, with FSPS too.
NUMPY_FIX = ("    filternames = filtersets[int(catalog[ind]['filterset'])]",
             "    filternames = filtersets[int(catalog[ind]['filterset'][0])]")


#: The same demo with the SPS the emulator was trained on (BagpipesBasis), as a reference.
SPS_EDITS = [
    (EDITS[0][0], "    from prospect_emulator.sources import BagpipesSpecModel\n"
                  "    model = BagpipesSpecModel(model_params)"),
    (EDITS[1][0], "    from prospect_emulator.sources import BagpipesBasis\n"
                  "    return BagpipesBasis()"),
]


def edited(text, edits=EDITS):
    for old, new in edits + [NUMPY_FIX]:
        if old not in text:
            raise SystemExit(f"not a Prospector v1.4 demo_params.py: cannot find {old!r}")
        text = text.replace(old, new)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir")
    parser.add_argument("--objid", type=int, default=0)
    parser.add_argument("--sps-reference", action="store_true",
                        help="fit with BagpipesBasis (the emulator's training SPS) instead")
    parser.add_argument("--n-effective", type=int, default=None,
                        help="the demo's --nested_target_n_effective (Prospector's default 10000)")
    parser.add_argument("--demo-noise", action="store_true",
                        help="keep the demo's build_noise (observational errors only), to compare "
                             "with --sps-reference like for like")
    args, extra = parser.parse_known_args()  # the rest goes to demo_params.py
    if args.n_effective is not None:
        extra.append(f"--nested_target_n_effective={args.n_effective}")
    original = open(os.path.join(args.demo_dir, "demo_params.py")).read()
    edits = SPS_EDITS if args.sps_reference else EDITS[:2] if args.demo_noise else EDITS
    new = edited(original, edits)
    sys.stdout.writelines(difflib.unified_diff(original.splitlines(True), new.splitlines(True),
                                               "demo_params.py", "demo_params.py (edited)", n=1))
    work = tempfile.mkdtemp(prefix="prospector_demo_")
    with open(os.path.join(work, "demo_params.py"), "w") as f:
        f.write(new)
    shutil.copy(os.path.join(args.demo_dir, "demo_photometry.dat"), work)
    cmd = [sys.executable, "demo_params.py", "--dynesty", f"--objid={args.objid}",
           "--outfile=demo_emulator", *extra]
    print("\n$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL)
    seconds = time.time() - t0
    from prospect.io import read_results
    (path,) = [os.path.join(work, n) for n in os.listdir(work) if n.endswith("_result.h5")]
    res, obs, _ = read_results.results_from(path)
    samples = res["chain"]
    w = res["weights"] / res["weights"].sum()
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"wall time of the whole script {seconds:.1f} s; results {path}")
    print(f"sps_libraries recorded: {res['run_params'].get('sps_libraries')}")
    print(f"bestfit group: {'bestfit' in res}; {len(obs['filters'])} bands")
    print(f"{'parameter':10s} {'16%':>10s} {'50%':>10s} {'84%':>10s}")
    for j, name in enumerate(res["theta_labels"]):
        x = samples[:, j]
        order = np.argsort(x)
        cdf = np.cumsum(w[order])
        q = np.interp([0.16, 0.5, 0.84], cdf, x[order])
        if name == "mass":
            name, q = "log10 mass", np.log10(q)
        print(f"{name:10s} {q[0]:10.3f} {q[1]:10.3f} {q[2]:10.3f}")
    best = res["bestfit"]
    chi = (obs["maggies"] - best["photometry"]) / obs["maggies_unc"]
    print(f"best fit: chi^2 = {np.sum(chi[obs['phot_mask']] ** 2):.1f} over "
          f"{int(np.sum(obs['phot_mask']))} bands (observational errors only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
