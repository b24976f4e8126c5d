"""``prospect-emulator plot RESULT.h5``: corner and SED plots of a finished fit."""
import os


def add_arguments(parser):
    parser.add_argument("results",
                        help="results file of a fit (demo's example_results.h5, or a catalogue "
                             "object's <id>.h5 or <id>.json)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: the results file's folder)")
    parser.add_argument("--emulator", default=None,
                        help="the fit's emulator file, if it moved since the fit (its checksum "
                             "must match)")
    parser.add_argument("--draws", type=int, default=2000,
                        help="equal-weight posterior draws for the corner plot (default 2000)")


def run(args):
    import importlib.util
    from ..errors import EmulatorConfigurationError
    missing = [m for m in ("matplotlib", "corner") if importlib.util.find_spec(m) is None]
    if missing:
        raise EmulatorConfigurationError(
            f"plots need {' and '.join(missing)}: pip install 'prospect-emulator[plot]'")
    import numpy as np
    from ..fitting.plots import corner_columns, corner_plot, sed_plot
    from ..fitting.quality import fit_quality
    from ..fitting.results import load_fit
    from ..prospector import EmulatorNoiseModel

    results, obs, model = load_fit(args.results, emulator=args.emulator)
    run_params = results.get("run_params") or {}
    quality = results.get("fit_quality")
    if quality is None:  # a file without the record: recompute it with the fit's noise model
        noise = EmulatorNoiseModel(model, floor=run_params.get("noise_floor") or 0.05,
                                   covariance=bool(run_params.get("noise_covariance")))
        quality = fit_quality(model, obs, noise, results["chain"], results["weights"],
                              lnprobability=results.get("lnprobability"))
    out = args.out or os.path.dirname(os.path.abspath(args.results))
    os.makedirs(out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(args.results))[0]

    names, labels, draws, truths = corner_columns(model, results["chain"], results["weights"],
                                                  n=args.draws, truths=run_params.get("truths"))
    corner_path = os.path.join(out, f"{stem}_corner.png")
    corner_plot(draws, labels, corner_path, truths=truths)

    filter_names = [f.name for f in obs["filters"]]
    total_sigma = np.array([quality["total_sigma"].get(n, np.nan) for n in filter_names])
    model_phot = np.array([model.predict(t, obs=obs)[1] for t in draws[:300, :model.ndim]])
    best = np.asarray(results.get("bestfit", {}).get("photometry", quality["bestfit"]["maggies"]))
    title = f"{run_params.get('object_id', stem)}, z = {model.params['zred'][0]:g}"
    sed_path = os.path.join(out, f"{stem}_sed.png")
    sed_plot(obs, model_phot, sed_path, title=title, total_sigma=total_sigma, best_maggies=best)

    flags = quality["flags"]
    raised = [k for k, v in flags.items() if v]
    print(f"{args.results}: chi2 = {quality['chi2']:.1f} over {quality['n_bands']} bands "
          f"(chi2/N = {quality['chi2_per_band']:.2f}), {quality['n_masked']} masked; flags: "
          + (", ".join(f"{k} {flags[k]}" if isinstance(flags[k], list) else k for k in raised)
             or "none"))
    print(f"wrote {corner_path} and {sed_path}")
    return 0
