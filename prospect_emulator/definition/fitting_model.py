"""The Prospector model an emulator was trained for, built from its model definition.

An emulator file written by this package stores its model definition (the
:class:`~prospect_emulator.definition.presets.TrainingSetConfig` of its
training set: inputs, training distributions, fixed physics, SFH family) in
its provenance.  :func:`definition_of` reads it back (older files: from the
preset name and distributions they record), and :func:`fitting_model_params`
turns it into Prospector ``model_params`` with the *fitting* priors:

``continuity`` presets (``default``, ``paper18``)
    The paper's Table 1 prior column, with Prospector's own prior classes
    (``TopHat``, ``ClippedNormal``, ``FastTruncatedEvenStudentTFreeDeg2`` for
    the truncated Student-t of the SFR ratios), clipped to the training ranges.
``parametric``
    Prospector's ``parametric_sfh`` template as a user knows it (``mass``,
    ``logzsol``, ``dust2``, ``tage``, ``tau`` free; ``zred`` fixed) with the
    template's priors; the emulator reads ``logmass``, ``logtage``, ``logtau``
    and ``logzred`` as log10 of those parameters.

The fitting priors never reach beyond the training ranges, so the models built
here raise no :class:`~prospect_emulator.TrainingRangeWarning`.
"""
import json
import math

import numpy as np

from ..errors import EmulatorConfigurationError
from .distributions import TruncatedNormal, TruncatedStudentT, Uniform
from .presets import (PAPER_PRIOR_DISTRIBUTIONS, TrainingSetConfig, expand_param_names,
                      get_preset)

__all__ = ["definition_of", "config_from_dict", "prospector_prior", "fitting_model_params",
           "emulator_model_params", "LOG_INPUT_PREFIX"]

#: An emulator input ``logX`` is read as log10 of a model's ``X`` when the
#: model has no ``logX`` (``logmass`` <- ``mass``, ``logtau`` <- ``tau`` ...).
LOG_INPUT_PREFIX = "log"


def config_from_dict(spec):
    """A :class:`TrainingSetConfig` from its :meth:`~TrainingSetConfig.to_dict`."""
    try:
        return TrainingSetConfig(spec["name"], spec["inputs"], spec["distributions"],
                                 fixed=spec.get("fixed", {}), sps=spec.get("sps", "bagpipes"),
                                 description=spec.get("description", ""),
                                 sfh_family=spec.get("sfh_family", "continuity"))
    except KeyError as err:
        raise EmulatorConfigurationError(f"model definition without {err}: {spec!r}") from None


def _provenance(emulator):
    members = getattr(emulator, "members", None)
    if members:
        return members[0].provenance or {}
    return getattr(emulator, "provenance", None) or {}


def definition_of(emulator):
    """The model definition an emulator was trained with, or None.

    Parameters
    ----------
    emulator : Emulator or StitchedEmulator

    Returns
    -------
    TrainingSetConfig or None
        None for an emulator whose provenance records no model (a published
        Parrot emulator, a hand-made network).
    """
    prov = _provenance(emulator)
    spec = prov.get("model_definition")
    if spec:
        return config_from_dict(json.loads(spec) if isinstance(spec, str) else spec)
    preset = (prov.get("training_set") or {}).get("preset")
    if not preset:
        return None
    # files written before the definition was stored: their preset, their distributions
    base = get_preset(preset)
    dists = prov.get("distributions")
    dists = json.loads(dists) if isinstance(dists, str) else dists
    if dists and set(dists) == set(base.param_names):
        base = TrainingSetConfig(base.name, [p for p, _ in base.inputs], dists, fixed=base.fixed,
                                 sps=base.sps, description=base.description,
                                 sfh_family=base.sfh_family)
    return base


def prospector_prior(dists):
    """A Prospector prior object for one or more (vector component) distributions.

    Parameters
    ----------
    dists : list of Distribution
        ``Uniform`` -> ``TopHat``; ``TruncatedNormal`` -> ``ClippedNormal``;
        ``TruncatedStudentT`` with 2 degrees of freedom centred on 0 and
        symmetric bounds -> ``FastTruncatedEvenStudentTFreeDeg2`` (Table 1's
        SFR-ratio prior); other Student-t -> ``StudentT`` (untruncated; its
        tails beyond the bounds get ln p = -inf from the emulator's range).
    """
    from prospect.models import priors
    kind = {type(d) for d in dists}
    if len(kind) != 1:
        raise TypeError(f"components of one parameter need one distribution type, got {kind}")
    kind = kind.pop()

    def arr(attr):
        v = np.array([getattr(d, attr) for d in dists], dtype=float)
        return v[0] if len(v) == 1 else v

    if kind is Uniform:
        return priors.TopHat(mini=arr("low"), maxi=arr("high"))
    if kind is TruncatedNormal:
        return priors.ClippedNormal(mean=arr("mean"), sigma=arr("sigma"), mini=arr("low"),
                                    maxi=arr("high"))
    if kind is TruncatedStudentT:
        even = all(d.df == 2 and d.loc == 0 and d.low == -d.high for d in dists)
        if even:
            return priors.FastTruncatedEvenStudentTFreeDeg2(
                hw=np.atleast_1d(arr("high")), sig=np.atleast_1d(arr("scale")))
        return priors.StudentT(mean=arr("loc"), scale=arr("scale"), df=arr("df"))
    raise TypeError(f"no Prospector prior for {kind.__name__}")


# ------------------------------------------------------------------ continuity
def _continuity_params(config, param_ranges):
    params = config.build_model_params()
    for name, size in config.inputs:
        entry = params[name]
        comps = expand_param_names([(name, size)])
        dists = []
        for c in comps:
            prior = PAPER_PRIOR_DISTRIBUTIONS.get(c, config.distributions[c])
            lo, hi = param_ranges.get(c, config.distributions[c].bounds)
            dists.append(_clipped(prior, lo, hi))
        entry["prior"] = prospector_prior(dists)
        if size == 1:  # start inside the prior's bulk, not at the training-range centre
            mean = getattr(dists[0], "mean", getattr(dists[0], "loc", entry["init"]))
            entry["init"] = float(np.clip(mean, dists[0].low, dists[0].high))
        else:
            entry["init"] = np.array([float(np.clip(getattr(d, "loc", 0.0), d.low, d.high))
                                      for d in dists])
    return params


def _clipped(dist, lo, hi):
    """``dist`` with its bounds intersected with the training range [lo, hi]."""
    from .distributions import distribution_from_dict
    d = dist.to_dict()
    d["low"], d["high"] = max(d["low"], lo), min(d["high"], hi)
    if not d["low"] < d["high"]:
        raise EmulatorConfigurationError(
            f"{dist.name}: the prior [{dist.low:g}, {dist.high:g}] and the training range "
            f"[{lo:g}, {hi:g}] do not overlap")
    return distribution_from_dict(d, name=dist.name)


# ------------------------------------------------------------------ parametric
#: Prospector's parametric_sfh template priors, per model parameter: (prior class
#: name, low, high) in the model parameter's own units.
_PARAMETRIC_PRIORS = {
    "mass": ("LogUniform", 1e8, 1e12),     # Msun formed
    "logzsol": ("TopHat", -2.0, 0.19),     # dex
    "dust2": ("TopHat", 0.0, 2.0),         # optical depth at 5500 AA
    "tage": ("TopHat", 0.001, 13.8),       # Gyr
    "tau": ("LogUniform", 0.1, 30.0),      # Gyr
}


def _parametric_params(config, param_ranges):
    from prospect.models import priors
    from prospect.models.templates import TemplateLibrary
    params = TemplateLibrary["parametric_sfh"]
    for name, value in config.fixed.items():
        params.setdefault(name, {"N": int(np.size(value)), "isfree": False})
        params[name].update(isfree=False, init=value)
        params[name].pop("prior", None)
    for name, (kind, lo, hi) in _PARAMETRIC_PRIORS.items():
        input_name = name if name in param_ranges else LOG_INPUT_PREFIX + name
        if input_name not in param_ranges:
            continue
        t_lo, t_hi = param_ranges[input_name]
        if input_name != name:
            t_lo, t_hi = 10.0 ** t_lo, 10.0 ** t_hi
        # the template's bound where it is the training bound up to the rounding of
        # 10**log10(x); the training bound where the template reaches beyond it
        tol_lo, tol_hi = 1e-12 * abs(t_lo), 1e-12 * abs(t_hi)
        lo = lo if lo >= t_lo - tol_lo else t_lo + tol_lo
        hi = hi if hi <= t_hi + tol_hi else t_hi - tol_hi
        params[name]["prior"] = getattr(priors, kind)(mini=lo, maxi=hi)
        params[name]["isfree"] = True
        init = float(params[name]["init"])
        params[name]["init"] = init if lo <= init <= hi else (
            math.sqrt(lo * hi) if kind == "LogUniform" else 0.5 * (lo + hi))
    return params


# ------------------------------------------------------------------ public
def fitting_model_params(config, zred=None, param_ranges=None, **overrides):
    """Prospector ``model_params`` for fitting with an emulator of ``config``.

    Parameters
    ----------
    config : TrainingSetConfig
        The model definition (:func:`definition_of` an emulator).
    zred : float, optional
        Fix the redshift to this value; default: free, with a uniform prior
        over the training range.
    param_ranges : mapping, optional
        Emulator input name -> (low, high), the emulator's actual training
        ranges (default: the definition's distributions' bounds).
    **overrides
        Per model parameter: a value (fixes it) or a dict updating its
        specification (``{"prior": ..., "isfree": True}``).

    Returns
    -------
    dict
    """
    ranges = {p: d.bounds for p, d in config.distributions.items()}
    ranges.update({k: tuple(map(float, v)) for k, v in dict(param_ranges or {}).items()})
    if config.sfh_family == "parametric":
        params = _parametric_params(config, ranges)
    else:
        params = _continuity_params(config, ranges)
    _set_redshift(params, zred, ranges)
    for name, value in overrides.items():
        if isinstance(value, dict):
            params.setdefault(name, {"N": 1, "isfree": False, "init": 0.0}).update(value)
        else:
            params[name] = {"N": int(np.size(value)), "isfree": False, "init": value}
    return params


def _set_redshift(params, zred, ranges):
    from prospect.models import priors
    log_input = "logzred" in ranges
    lo, hi = ranges["logzred"] if log_input else ranges.get("zred", (None, None))
    if log_input:
        lo, hi = 10.0 ** lo, 10.0 ** hi
    entry = params["zred"]
    entry.pop("depends_on", None)
    if zred is not None:
        entry.update(isfree=False, init=float(zred))
        entry.pop("prior", None)
    elif lo is not None:
        entry.update(isfree=True, init=0.5 * (lo + hi),
                     prior=priors.TopHat(mini=lo * (1 + 1e-9), maxi=hi * (1 - 1e-9)))


def emulator_model_params(emulator, zred=None, **overrides):
    """:func:`fitting_model_params` of an emulator's own definition and training ranges.

    Parameters
    ----------
    emulator : Emulator or StitchedEmulator
    zred, **overrides
        See :func:`fitting_model_params`.

    Raises
    ------
    EmulatorConfigurationError
        The emulator records no model definition (a published Parrot emulator,
        a hand-made network).
    """
    definition = definition_of(emulator)
    if definition is None:
        raise EmulatorConfigurationError(
            f"{emulator!r} records no model definition (it was not trained by this package): "
            f"build Prospector model_params for its inputs {emulator.param_names} and call "
            "EmulatedSpecModel(model_params, emulator=...)")
    ranges = dict(zip(emulator.param_names, emulator.param_ranges.tolist()))
    return fitting_model_params(definition, zred=zred, param_ranges=ranges, **overrides)
