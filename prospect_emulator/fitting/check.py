"""Checks of a Prospector parameter file or a catalogue before any fitting.

``prospect-emulator check PARAMFILE|CATALOG`` runs them and prints each
problem with its fix; :func:`check_param_file` and :func:`check_catalog`
return the same as a list of :class:`Problem`.
"""
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Problem", "check_param_file", "check_catalog"]

#: Flux ratio (data / model) beyond which units or distance are suspect (dex 1.5).
SUSPECT_FLUX_RATIO = 10 ** 1.5


@dataclass
class Problem:
    """One finding: ``severity`` "error" (the fit would be wrong) or "warning"."""
    severity: str
    what: str
    fix: str

    def __str__(self):
        return f"{self.severity.upper()}: {self.what}\n  fix: {self.fix}"


def _load_param_file(path):
    spec = importlib.util.spec_from_file_location("_checked_param_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flux_range_problem(model, obs, n_draws=200, seed=0):
    """Observed fluxes against what the model can produce over its prior."""
    mask = np.asarray(obs.get("phot_mask", np.ones(len(obs["maggies"]), bool)), bool)
    rng = np.random.default_rng(seed)
    phot = []
    for u in rng.uniform(size=(n_draws, model.ndim)):
        try:
            phot.append(model.predict(model.prior_transform(u), obs=obs)[1])
        except ValueError:  # outside the training range: -inf in a fit
            continue
    if not phot:
        return None
    ratio = np.median(np.asarray(obs["maggies"])[mask] / np.array(phot)[:, mask], axis=1)
    lo, hi = np.min(ratio), np.max(ratio)
    if hi < 1 / SUSPECT_FLUX_RATIO or lo > SUSPECT_FLUX_RATIO:
        return Problem(
            "error", f"the observed fluxes are {np.median(ratio):.3g} times what the model "
            f"produces anywhere in its prior (over {len(phot)} prior draws; range of median "
            f"ratios {lo:.3g}..{hi:.3g})",
            "check the flux units (obs['maggies'] in maggies: 1 maggie = 3631 Jy), lumdist "
            "(Mpc) and the mass prior")
    return None


def check_param_file(path):
    """Build a parameter file's obs, model, sps and noise and check them.

    Parameters
    ----------
    path : str
        A Prospector parameter file defining ``build_obs``, ``build_model`` and
        optionally ``build_sps``, ``build_noise`` and ``run_params``.

    Returns
    -------
    list of Problem
    """
    from ..errors import EmulatorError
    from ..prospector import EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS
    problems = []
    module = _load_param_file(path)
    run_params = dict(getattr(module, "run_params", {}))
    try:
        model = module.build_model(**run_params)
    except EmulatorError as err:
        return [Problem("error", f"build_model: {err}",
                        "see the message; docs/replace_fsps.md lists every parameter's treatment")]
    if not isinstance(model, EmulatedSpecModel):
        return [Problem("error", f"build_model returns a {type(model).__name__}",
                        "return EmulatedSpecModel(model_params) instead of "
                        f"{type(model).__name__}(model_params)")]
    obs = module.build_obs(**run_params)
    try:
        model.predict(model.theta, obs=obs)
    except EmulatorError as err:
        problems.append(Problem("error", f"the obs: {err}", "use the emulator's filters"))
        return problems
    if obs.get("maggies") is not None:
        found = _flux_range_problem(model, obs)
        if found:
            problems.append(found)
    if hasattr(module, "build_sps"):
        sps = module.build_sps(**run_params)
        if sps is not None and not isinstance(sps, EmulatorSPS):
            problems.append(Problem("warning", f"build_sps builds a {type(sps).__name__}, which "
                                    "the emulator never uses",
                                    "return EmulatorSPS() (keeps sps.ssp.libraries working)"))
    if hasattr(module, "build_noise"):
        noise = module.build_noise(**run_params)
        phot_noise = noise[1] if isinstance(noise, (tuple, list)) and len(noise) == 2 else None
        if not isinstance(phot_noise, EmulatorNoiseModel):
            problems.append(Problem("error", "build_noise does not return an EmulatorNoiseModel: "
                                    "the emulator's own error (eq. 9) is left out of the "
                                    "likelihood, so the posteriors are too narrow",
                                    "return None, EmulatorNoiseModel()"))
    nlive = run_params.get("nested_nlive_init")
    if nlive is not None and nlive < 2 * model.ndim:
        problems.append(Problem("error", f"nested_nlive_init = {nlive} is below twice the "
                                f"{model.ndim} free parameters",
                                f"use at least {2 * model.ndim} live points"))
    return problems


def check_catalog(path, emulator, columns=None):
    """Check a catalogue for ``prospect-emulator fit``.

    Parameters
    ----------
    path : str
    emulator : Emulator or StitchedEmulator
    columns : CatalogColumns, optional

    Returns
    -------
    list of Problem
    """
    from ..errors import EmulatorConfigurationError
    from .catalog import CatalogColumns, read_catalog
    columns = columns or CatalogColumns()
    try:
        records, filters = read_catalog(path, columns, emulator.filter_names)
    except EmulatorConfigurationError as err:
        return [Problem("error", str(err), "name the columns with --flux-column/--unc-column/"
                        "--zred-column/--id-column and the unit with --flux-unit")]
    problems = []
    names = emulator.param_names
    zname = "zred" if "zred" in names else "logzred" if "logzred" in names else None
    if zname:
        lo, hi = emulator.param_ranges[names.index(zname)]
        lo, hi = (10 ** lo, 10 ** hi) if zname == "logzred" else (lo, hi)
        outside = [r["id"] for r in records
                   if "error" not in r and not lo <= r["zred"] <= hi]
        if outside:
            problems.append(Problem("error", f"{len(outside)} object(s) have redshifts outside "
                                    f"the emulator's [{lo:g}, {hi:g}] (e.g. {outside[:3]})",
                                    "use an emulator trained over their redshifts"))
    bad = [f"{r['id']}: {r['error']}" for r in records if "error" in r]
    if bad:
        problems.append(Problem("warning", f"{len(bad)} row(s) cannot be fitted: "
                                + "; ".join(bad[:3]), "fix or drop those rows"))
    if len(filters) < 4:
        problems.append(Problem("warning", f"only {len(filters)} bands found: {filters}",
                                "check --flux-column/--unc-column templates"))
    return problems


def is_param_file(path):
    """A ``.py`` file is a parameter file; anything else a catalogue."""
    return os.fspath(path).endswith(".py")
