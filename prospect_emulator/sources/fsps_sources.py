"""Building Prospector SPS sources by name, FSPS included where it can run.

``make_sps("bagpipes")`` works after ``pip install 'prospect-emulator[sps]'``;
``make_sps("fsps-step")`` and ``make_sps("fsps-parametric")`` build
Prospector's own FSPS sources (``FastStepBasis``, ``CSPSpecBasis``) and need
python-fsps with its data tree in ``$SPS_HOME``.  All of them serve
``SpecModel.predict(theta, obs=obs, sps=sps)``; :func:`make_spec_model` gives
the matching ``SpecModel`` (one that needs no ``SPS_HOME``).
"""
import os

from ..errors import EmulatorConfigurationError

__all__ = ["SPS_NAMES", "make_sps", "make_spec_model", "fsps_unavailable_reason",
           "FSPSUnavailableError"]

#: Names :func:`make_sps` understands, with what they build.
SPS_NAMES = {
    "bagpipes": "prospect_emulator.sources.BagpipesBasis (BC03/MILES grids of Bagpipes; no FSPS)",
    "fsps-step": "prospect.sources.FastStepBasis(zcontinuous=1): FSPS, step SFH (agebins + mass)",
    "fsps-parametric": "prospect.sources.CSPSpecBasis(zcontinuous=1): FSPS, parametric SFHs",
}


class FSPSUnavailableError(EmulatorConfigurationError):
    """FSPS cannot run here: python-fsps is missing or ``SPS_HOME`` is not usable."""


def fsps_unavailable_reason():
    """Why FSPS cannot run here, or ``None`` when it can.

    Returns
    -------
    reason : str or None
        A sentence naming what is missing (``SPS_HOME`` unset, not a
        directory, python-fsps not installed or failing to import).
    """
    sps_home = os.getenv("SPS_HOME")
    if not sps_home:
        return ("SPS_HOME is not set: FSPS needs its data tree "
                "(git clone https://github.com/cconroy20/fsps and export SPS_HOME=<that dir>)")
    if not os.path.isdir(sps_home):
        return f"SPS_HOME={sps_home!r} is not a directory"
    try:
        import fsps  # noqa: F401
    except ImportError:
        return "python-fsps is not installed (pip install 'prospect-emulator[fsps]')"
    except Exception as err:  # fsps raises RuntimeError on a broken data tree
        return f"import fsps failed: {type(err).__name__}: {err}"
    return None


def make_sps(name="bagpipes", **kwargs):
    """A Prospector SPS source by name (what a ``build_sps`` function returns).

    Parameters
    ----------
    name : {"bagpipes", "fsps-step", "fsps-parametric"}
        See :data:`SPS_NAMES`.
    **kwargs
        Passed to the constructor (e.g. ``resolution`` for Bagpipes,
        ``compute_vega_mags`` for FSPS).

    Returns
    -------
    sps : object with ``get_galaxy_spectrum(**params)`` and ``get_galaxy_elines()``

    Raises
    ------
    EmulatorConfigurationError
        An unknown name.
    FSPSUnavailableError
        An FSPS source asked for where FSPS cannot run (the message says why).
    """
    if name == "bagpipes":
        from .bagpipes_basis import BagpipesBasis
        return BagpipesBasis(**kwargs)
    if name not in SPS_NAMES:
        raise EmulatorConfigurationError(
            f"unknown SPS source {name!r}; allowed: " + ", ".join(SPS_NAMES))
    reason = fsps_unavailable_reason()
    if reason is not None:
        raise FSPSUnavailableError(
            f"cannot build the {name!r} SPS source: {reason}. "
            "make_sps('bagpipes') needs no FSPS")
    kwargs.setdefault("zcontinuous", 1)
    if name == "fsps-step":
        from prospect.sources import FastStepBasis
        return FastStepBasis(**kwargs)
    from prospect.sources import CSPSpecBasis
    return CSPSpecBasis(**kwargs)


def make_spec_model(model_params, sps=None, skip_unused_smoothing=False):
    """The ``SpecModel`` that goes with ``sps``; it works with ``SPS_HOME`` unset.

    Parameters
    ----------
    model_params : dict or list
        Prospector model parameter specification.
    sps : SPS source, optional
        :class:`~prospect_emulator.sources.BagpipesBasis` gets a
        :class:`~prospect_emulator.sources.BagpipesSpecModel` (Bagpipes'
        emission-line list); anything else (or None) an
        :class:`~prospect_emulator.sources.spec_model.SPSHomeFreeSpecModel`
        (FSPS' line list when ``$SPS_HOME`` has it, else the source's).
    skip_unused_smoothing : bool
        Leave the spectrum unsmoothed when ``obs`` asks for none (photometry
        only; identical photometry, ~20% faster); see
        :class:`~prospect_emulator.sources.spec_model.SPSHomeFreeSpecModel`.

    Returns
    -------
    model : prospect.models.SpecModel
    """
    from .bagpipes_basis import BagpipesBasis, BagpipesSpecModel
    from .spec_model import SPSHomeFreeSpecModel
    if isinstance(sps, BagpipesBasis):
        model = BagpipesSpecModel(model_params)
    else:
        model = SPSHomeFreeSpecModel(model_params)
        if model._eline_info_from_sps and sps is not None:
            model.use_eline_info_of(sps)
    model.skip_unused_smoothing = bool(skip_unused_smoothing)
    return model
