"""A Prospector ``SpecModel`` that works with any SPS source and ``SPS_HOME`` unset.

Prospector 1.4.1's ``SpecModel.__init__`` reads FSPS' emission-line table,
``$SPS_HOME/data/emlines_info.dat``, and crashes with a TypeError when
``SPS_HOME`` is unset.  :class:`SPSHomeFreeSpecModel` reads that table when it
exists and otherwise takes the lines of the SPS source itself.
"""
import os

import numpy as np

from prospect.models import SpecModel

__all__ = ["SPSHomeFreeSpecModel", "ELINE_DTYPE", "set_eline_info", "read_fsps_eline_info"]

#: dtype of ``SpecModel.emline_info``, as Prospector reads ``emlines_info.dat``.
ELINE_DTYPE = [("wave", "f8"), ("name", "<U20")]


def set_eline_info(model, info=None):
    """Give a ``SpecModel`` its emission-line table, every line in use.

    Parameters
    ----------
    model : prospect.models.SpecModel
    info : structured ndarray with fields ``wave`` (rest-frame AA) and ``name``, optional
        None: no lines at all.
    """
    if info is None:
        info = np.zeros(0, dtype=ELINE_DTYPE)
    model.emline_info = info
    model._use_eline = np.ones(len(info), dtype=bool)


def read_fsps_eline_info(eline_file="emlines_info.dat"):
    """FSPS' emission-line table from ``$SPS_HOME/data`` (as ``SpecModel`` reads it).

    Returns
    -------
    structured ndarray (:data:`ELINE_DTYPE`) or None
        None when ``SPS_HOME`` is unset or the file does not exist.
    """
    sps_home = os.getenv("SPS_HOME")
    path = os.path.join(sps_home, "data", eline_file) if sps_home else None
    if path and os.path.exists(path):
        return np.genfromtxt(path, dtype=ELINE_DTYPE, delimiter=",")
    return None


class SPSHomeFreeSpecModel(SpecModel):
    """``prospect.models.SpecModel`` that works with ``SPS_HOME`` unset.

    Identical to Prospector's class except for the emission-line table: FSPS'
    table when ``$SPS_HOME`` has it, else the source's own (``sps.emline_info``,
    e.g. :class:`~prospect_emulator.sources.BagpipesBasis`), taken at the first
    ``predict``; for a source without one, the lines it returns, named by
    wavelength.  :func:`~prospect_emulator.sources.make_spec_model` builds it.

    Attributes
    ----------
    skip_unused_smoothing : bool
        When True and ``obs`` asks for no spectrum (no ``"spectrum"``, no
        ``"wavelength"``), the returned spectrum is not velocity-smoothed:
        nobody uses it, and the smoothing is ~20% of the time of a model.
        ``predict_phot`` works on the unsmoothed spectrum either way, so the
        photometry is identical to the last bit.  Default False (Prospector's
        behaviour); training-set generation turns it on.
    """

    skip_unused_smoothing = False

    def init_eline_info(self, eline_file="emlines_info.dat"):
        info = read_fsps_eline_info(eline_file)
        set_eline_info(self, info)
        self._eline_info_from_sps = info is None

    def use_eline_info_of(self, sps):
        """Take the emission-line table of ``sps`` if it has one (``sps.emline_info``)."""
        info = getattr(sps, "emline_info", None)
        if info is not None:
            set_eline_info(self, info)
            self._eline_info_from_sps = False

    def predict(self, theta, obs=None, sps=None, **extras):
        if getattr(self, "_eline_info_from_sps", False) and sps is not None:
            self.use_eline_info_of(sps)
        obs = obs or {}
        self._skip_smoothing = (self.skip_unused_smoothing and obs.get("spectrum") is None
                                and obs.get("wavelength") is None)
        return super().predict(theta, obs=obs, sps=sps, **extras)

    def smoothspec(self, wave, spec):
        if getattr(self, "_skip_smoothing", False):
            return spec
        return super().smoothspec(wave, spec)

    def parse_elines(self):
        # a source without a line table: size it to the lines the source returns
        wave = np.atleast_1d(getattr(self, "_eline_wave", np.zeros(0)))
        if getattr(self, "_eline_info_from_sps", False) and len(self.emline_info) != len(wave):
            info = np.zeros(len(wave), dtype=ELINE_DTYPE)
            info["wave"], info["name"] = wave, [f"line_{w:.2f}" for w in wave]
            set_eline_info(self, info)
        return super().parse_elines()
