"""Reading a fit back: Prospector's HDF5 results with a ``bestfit`` group, and
:func:`load_fit`, which rebuilds the model without unpickling anything.

A results file written by :func:`~prospect_emulator.fitting.run.fit_galaxy`
records in its ``run_params`` what the model was built from (see
:func:`model_recipe`): the emulator file (``emulator``) and its SHA-256
(``emulator_sha256``), the object's redshift (``zred``) and the model
overrides (``model_overrides``).  :func:`load_fit` rebuilds the model from
them with :func:`~prospect_emulator.fitting.models.build_fitting_model`.

Prospector's own ``prospect.io.read_results.results_from`` also reads these
files (it unpickles the stored ``model_params``; :func:`load_fit` never does).
"""
import hashlib
import json
import os

import numpy as np

from ..errors import EmulatorConfigurationError, EmulatorFileError

__all__ = ["load_fit", "read_results", "model_recipe", "file_sha256", "write_bestfit",
           "RECIPE_KEYS"]

#: ``run_params`` entries that rebuild the model of a fit.
RECIPE_KEYS = ("emulator", "emulator_sha256", "zred", "model_overrides")


def file_sha256(path):
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------- model overrides
def _encode_prior(prior):
    """A Prospector prior as JSON: its class in ``prospect.models.priors`` and
    the keyword arguments that rebuild it (checked by a round trip)."""
    from prospect.models import priors
    cls = type(prior)
    if getattr(priors, cls.__name__, None) is not cls:
        raise EmulatorConfigurationError(
            f"the prior {prior!r} is not one of prospect.models.priors, so a results file "
            "cannot record it: use Prospector's prior classes in model overrides")
    kwargs = {k: np.asarray(v).tolist() for k, v in dict(prior.params).items()}
    for key in ("hw", "sig"):  # FastTruncatedEvenStudentTFreeDeg2 keeps these outside params
        if key in vars(prior) and key not in kwargs:
            kwargs[key] = np.asarray(vars(prior)[key]).tolist()
    rebuilt = _decode_prior({"prior_class": cls.__name__, "kwargs": kwargs})
    u = np.array([0.1, 0.5, 0.9])
    if not np.allclose(_unit_transform(prior, u), _unit_transform(rebuilt, u), equal_nan=True):
        raise EmulatorConfigurationError(
            f"the prior {prior!r} cannot be recorded in a results file (its parameters do not "
            "rebuild it); use a prior described by its keyword arguments")
    return {"prior_class": cls.__name__, "kwargs": kwargs}


def _unit_transform(prior, u):
    n = len(prior)
    return np.array([np.atleast_1d(prior.unit_transform(np.full(n, x))) for x in u])


def _decode_prior(spec):
    from prospect.models import priors
    cls = getattr(priors, spec["prior_class"], None)
    if cls is None:
        raise EmulatorConfigurationError(
            f"this Prospector has no prior class {spec['prior_class']!r} (recorded in the "
            "results file's model_overrides)")
    return cls(**{k: np.asarray(v) if isinstance(v, list) else v
                  for k, v in spec["kwargs"].items()})


def _encode_overrides(overrides):
    out = {}
    for name, value in overrides.items():
        if isinstance(value, dict):
            out[name] = {k: (_encode_prior(v) if k == "prior" else _json_value(name, v))
                         for k, v in value.items()}
        else:
            out[name] = _json_value(name, value)
    return out


def _json_value(name, value):
    value = np.asarray(value).tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    try:
        json.dumps(value)
    except TypeError:
        raise EmulatorConfigurationError(
            f"model override {name}={value!r} cannot be recorded in a results file (not a "
            "number, string, list or Prospector prior), so load_fit could not rebuild the "
            "model") from None
    return value


def _decode_overrides(encoded):
    out = {}
    for name, value in (encoded or {}).items():
        if isinstance(value, dict):
            out[name] = {k: (_decode_prior(v) if k == "prior" else
                             np.asarray(v) if isinstance(v, list) else v)
                         for k, v in value.items()}
        else:
            out[name] = np.asarray(value) if isinstance(value, list) else value
    return out


def model_recipe(emulator_path, zred=None, **overrides):
    """``run_params`` entries from which :func:`load_fit` rebuilds a fit's model.

    Parameters
    ----------
    emulator_path : str or path
        The native emulator file the model was built from.
    zred : float, optional
        The object's (fixed) redshift; ``None`` if free.
    **overrides
        The model overrides given to
        :func:`~prospect_emulator.fitting.models.build_fitting_model`
        (values, lists, or dicts whose ``prior`` is a Prospector prior).

    Returns
    -------
    dict
        :data:`RECIPE_KEYS`: ``emulator`` (absolute path), ``emulator_sha256``,
        ``zred``, ``model_overrides`` (JSON-serialisable).
    """
    path = os.path.abspath(os.fspath(emulator_path))
    if not os.path.isfile(path):
        raise EmulatorConfigurationError(f"no emulator file at {path} to record for load_fit")
    return {"emulator": path, "emulator_sha256": file_sha256(path),
            "zred": None if zred is None else float(zred),
            "model_overrides": _encode_overrides(overrides)}


# ------------------------------------------------------------ bestfit group
def write_bestfit(path, quality):
    """Add Prospector's ``bestfit`` group and the fit-quality record to a results file.

    The group is laid out as ``prospect.io.write_results.write_hdf5`` writes it
    when given an SPS object: datasets ``photometry`` (maggies, every band of
    ``obs["filters"]``), ``parameter`` (theta of the highest ln-posterior
    sample), ``spectrum`` and ``restframe_wavelengths`` (empty: a photometric
    emulator predicts no spectrum) and the attribute ``mfrac``; so
    ``results_from(path)[0]["bestfit"]["photometry"]`` works.  The record of
    :func:`~prospect_emulator.fitting.quality.fit_quality` goes in the
    top-level attribute ``fit_quality`` (JSON; ``results["fit_quality"]``).

    Parameters
    ----------
    path : str
        An HDF5 results file written by Prospector's ``write_hdf5``.
    quality : dict
        From :func:`~prospect_emulator.fitting.quality.fit_quality`.
    """
    import h5py
    best = quality["bestfit"]
    with h5py.File(path, "a") as hf:
        if "bestfit" in hf:
            del hf["bestfit"]
        group = hf.create_group("bestfit")
        group.create_dataset("photometry", data=np.asarray(best["maggies"], dtype=float))
        group.create_dataset("parameter", data=np.asarray(best["theta"], dtype=float))
        group.create_dataset("spectrum", data=np.zeros(0))
        group.create_dataset("restframe_wavelengths", data=np.zeros(0))
        group.attrs["mfrac"] = float(best["mfrac"])
        group.attrs["lnprobability"] = float(best["lnprobability"])
        hf.attrs["fit_quality"] = json.dumps(quality)


# ------------------------------------------------------------------ reading
def _json_attrs(attrs):
    """JSON-decoded attributes; anything else (a pickle) is left unread."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        elif isinstance(value, (np.number, int, float)):
            out[key] = value.item() if hasattr(value, "item") else value
    return out


def read_results(path):
    """Read a Prospector HDF5 results file without unpickling anything.

    Returns
    -------
    results : dict
        As ``prospect.io.read_results.results_from``'s: the ``sampling``
        arrays (``chain``, ``weights``, ``lnprobability``, ``lnlikelihood``,
        ``logz``, ...) at the top level, JSON attributes (``run_params``,
        ``theta_labels``, ``fit_quality``, ...), and ``bestfit``,
        ``optimization`` and ``obs`` dictionaries; ``obs["filters"]`` are sedpy
        Filters.  Pickled attributes (Prospector's ``model_params``) are left out.
    """
    import h5py
    from sedpy.observate import load_filters
    from ..fileio import open_hdf5
    res = {}
    with open_hdf5(path, missing=f"no results file at {path}") as hf:
        if "sampling" not in hf or "obs" not in hf:
            raise EmulatorFileError(
                f"{path} is not a Prospector results file (no 'sampling' and 'obs' groups)")
        groups = {}
        for name in ("sampling", "obs", "bestfit", "optimization"):
            d = {}
            if name in hf and isinstance(hf[name], h5py.Group):
                d.update({k: np.array(v) for k, v in hf[name].items()})
                d.update(_json_attrs(hf[name].attrs))
            groups[name] = d
        res.update(_json_attrs(hf.attrs))
    res.pop("model_params", None)
    res.update(groups["sampling"])
    res["bestfit"], res["optimization"], res["obs"] = (groups["bestfit"], groups["optimization"],
                                                     groups["obs"])
    obs = res["obs"]
    if obs.get("filters") is not None:
        obs["filters"] = load_filters([str(f) for f in obs["filters"]])
    if "phot_mask" in obs:
        obs["phot_mask"] = np.asarray(obs["phot_mask"], dtype=bool)
    return res


def _resolve_emulator(recorded_path, sha256, emulator, path):
    """The emulator file to rebuild the model from, its checksum verified."""
    from ..data import SHIPPED_EMULATORS
    if emulator is not None:
        candidate = os.fspath(emulator)
        candidate = SHIPPED_EMULATORS.get(candidate, candidate)
    else:
        candidate = recorded_path
        if candidate is None or not os.path.isfile(candidate):
            # a shipped emulator whose package moved: find it by its checksum
            for shipped in SHIPPED_EMULATORS.values():
                if os.path.isfile(shipped) and file_sha256(shipped) == sha256:
                    return shipped
            raise EmulatorFileError(
                f"{path} was fitted with the emulator {recorded_path}, which is not there any "
                "more: pass load_fit(..., emulator=PATH) with that emulator file")
    if not os.path.isfile(candidate):
        raise EmulatorFileError(f"no emulator file at {candidate}")
    if sha256 is not None:
        found = file_sha256(candidate)
        if found != sha256:
            raise EmulatorFileError(
                f"the emulator file {candidate} has changed since {path} was fitted (SHA-256 "
                f"{found[:12]}..., recorded {sha256[:12]}...): the rebuilt model would not be "
                "the one that was fitted. Pass load_fit(..., emulator=PATH) with the file used "
                "for the fit")
    return candidate


def load_fit(path, emulator=None):
    """Results, obs and rebuilt model of a fit, single or one object of a catalogue.

    Parameters
    ----------
    path : str or path
        A results file written by
        :func:`~prospect_emulator.fitting.run.fit_galaxy` (``prospect-emulator
        demo``), or one object of a catalogue fit: its ``<id>.h5`` or its
        ``<id>.json`` (the ``.h5`` beside it is read).
    emulator : str or path, optional
        The emulator file, if it moved since the fit (its SHA-256 must still
        match the recorded one).

    Returns
    -------
    results : dict
        :func:`read_results`; for a catalogue object also ``catalog_record``
        (the ``<id>.json`` summary).
    obs : dict
        The Prospector obs that was fitted (``filters`` as sedpy Filters).
    model : EmulatedSpecModel
        Rebuilt with :func:`~prospect_emulator.fitting.models.build_fitting_model`
        from the recorded emulator, redshift and overrides.

    Raises
    ------
    EmulatorFileError
        The results or emulator file is missing, or the emulator file changed
        since the fit (checksum).
    EmulatorConfigurationError
        The file records no emulator (written by something else than this
        package's ``fit_galaxy``).
    """
    import warnings
    from .models import build_fitting_model
    path = os.fspath(path)
    record = None
    if path.endswith(".json"):
        with open(path) as f:
            record = json.load(f)
        if record.get("status") != "ok":
            raise EmulatorConfigurationError(
                f"{path}: this object's fit failed ({record.get('error', 'no error recorded')}); "
                "there are no results to load")
        path = path[:-len(".json")] + ".h5"
    elif os.path.exists(path[:-len(".h5")] + ".json") and path.endswith(".h5"):
        with open(path[:-len(".h5")] + ".json") as f:
            record = json.load(f)
    results = read_results(path)
    if record is not None:
        results["catalog_record"] = record
    run_params = results.get("run_params") or {}
    missing = [k for k in ("emulator", "emulator_sha256") if k not in run_params]
    if missing:
        raise EmulatorConfigurationError(
            f"{path} records no {' and '.join(missing)} in its run_params, so its model cannot "
            "be rebuilt: it was not written by prospect_emulator's fit_galaxy (or by an older "
            "version); rebuild the model yourself with build_fitting_model(emulator, zred)")
    emulator_path = _resolve_emulator(run_params["emulator"], run_params["emulator_sha256"],
                                      emulator, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # training-range warnings were given at fit time
        model = build_fitting_model(emulator_path, zred=run_params.get("zred"),
                                    **_decode_overrides(run_params.get("model_overrides")))
    labels = results.get("theta_labels")
    if labels is not None and list(labels) != list(model.theta_labels()):
        raise EmulatorConfigurationError(
            f"the rebuilt model's free parameters {list(model.theta_labels())} differ from the "
            f"fitted ones {list(labels)} in {path}: the model-building code changed since the "
            "fit")
    return results, results["obs"], model
