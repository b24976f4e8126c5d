"""Prospector models for fitting with an emulator made from a training preset.

The emulator's inputs are the preset's parameters; the fit uses the same
Prospector transforms (continuity SFH bins that follow the redshift, dust1
from dust1_fraction, ...) with the *prior* distributions of the paper's
Table 1 instead of the thick-tailed training distributions (Sec. 4.2), and
the redshift fixed to the object's.
"""
import numpy as np

__all__ = ["fitting_model_params", "build_fitting_model", "prospector_prior"]


def prospector_prior(dists):
    """A Prospector prior object for one or more (vector component) distributions.

    Parameters
    ----------
    dists : list of Distribution
        Uniform -> ``TopHat``, TruncatedNormal -> ``ClippedNormal``,
        TruncatedStudentT -> ``StudentT`` (Prospector has no truncated
        Student-t: the tails beyond the bounds are left to the emulator's
        training range, where ``lnprobfn`` returns -inf).
    """
    from prospect.models import priors
    from ..definition.distributions import TruncatedNormal, TruncatedStudentT, Uniform
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
        return priors.ClippedNormal(mean=arr("mean"), sigma=arr("sigma"), mini=arr("low"), maxi=arr("high"))
    if kind is TruncatedStudentT:
        return priors.StudentT(mean=arr("loc"), scale=arr("scale"), df=arr("df"))
    raise TypeError(f"no Prospector prior for {kind.__name__}")


def fitting_model_params(zred, config=None, prior_distributions=None):
    """``model_params`` for fitting one object at a fixed redshift.

    Parameters
    ----------
    zred : float
        The object's redshift (fixed; the SFH bins follow it).
    config : TrainingSetConfig, optional
        The emulator's preset; default ``get_preset("default")``.
    prior_distributions : mapping, optional
        Prior per expanded input name; default the paper's Table 1 prior
        column (:data:`~prospect_emulator.definition.presets.PAPER_PRIOR_DISTRIBUTIONS`).

    Returns
    -------
    dict
    """
    from ..definition.presets import PAPER_PRIOR_DISTRIBUTIONS, expand_param_names, get_preset
    config = config or get_preset("default")
    prior_distributions = prior_distributions or PAPER_PRIOR_DISTRIBUTIONS
    params = config.build_model_params()
    for name, size in config.inputs:
        entry = params[name]
        if name == "zred":
            entry.update(isfree=False, init=float(zred))
            entry.pop("prior", None)
            continue
        comps = expand_param_names([(name, size)])
        entry["prior"] = prospector_prior([prior_distributions.get(c, config.distributions[c])
                                           for c in comps])
        if size == 1:  # start inside the prior's bulk, not at the training-range centre
            entry["init"] = float(np.clip(getattr(prior_distributions.get(comps[0]), "mean",
                                                  entry["init"]), *entry["prior"].range))
    return params


def build_fitting_model(emulator, zred, config=None, prior_distributions=None):
    """An :class:`~prospect_emulator.EmulatedSpecModel` for one object.

    Parameters
    ----------
    emulator : Emulator, StitchedEmulator or path
    zred : float
    config, prior_distributions : see :func:`fitting_model_params`
    """
    from ..prospector import EmulatedSpecModel
    return EmulatedSpecModel(fitting_model_params(zred, config, prior_distributions), emulator=emulator)
