"""Prospector integration (NumPy only at fit time).

* :class:`EmulatedSpecModel`: a ``prospect.models.SpecModel`` predicting
  photometry with an emulator; works with ``sps=None`` in ``lnprobfn``,
  ``fit_model`` and ``prospect.io.write_results``.
* :class:`EmulatorNoiseModel`: photometric noise including the emulator's
  error (paper eq. 9), for ``noise=(None, phot_noise)``.
* :func:`inflate_obs_uncertainties`: the paper's way, eq. 9 applied once to
  a copy of the obs dict.
* :class:`EmulatorSPS`: what ``build_sps`` returns (``sps.ssp.libraries``
  and Prospector's ``bestfit`` results group keep working).
* :mod:`.physics`: every model parameter checked against the emulator's
  training physics.
* :class:`VectorisedLikelihood`: Prospector's ``lnprobfn`` for a batch of
  parameter vectors in one pass, and its gradient.
* :class:`FastPriorProduct`: vectorised ln-prior equal to Prospector's.
"""
from .model import (EmulatedSpecModel, PhysicsNotCheckedWarning, TrainingRangeWarning,
                    filter_names_of)
from .noise import EmulatorNoiseModel, inflate_obs_uncertainties
from .sps import EmulatorSPS
from .vectorised import VectorisedLikelihood
from ..priors import FastPriorProduct

__all__ = ["EmulatedSpecModel", "EmulatorNoiseModel", "EmulatorSPS", "inflate_obs_uncertainties",
           "TrainingRangeWarning", "PhysicsNotCheckedWarning", "FastPriorProduct",
           "filter_names_of", "VectorisedLikelihood"]
