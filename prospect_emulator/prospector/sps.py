"""What a parameter file's ``build_sps`` returns when an emulator replaces the SPS."""
import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError

__all__ = ["EmulatorSPS"]


class _Libraries:
    def __init__(self, libraries):
        self.libraries = libraries


class EmulatorSPS:
    """Stands in for the SPS object of a Prospector script run with an emulator.

    :class:`~prospect_emulator.EmulatedSpecModel` ignores its ``sps``
    argument, so ``build_sps`` may return ``None``; returning this object
    instead keeps the rest of a Prospector v1.4 script working unchanged:

    * ``run_params["sps_libraries"] = sps.ssp.libraries`` records what made the
      emulator (``("emulator", <SPS of its training set>, "prospect-emulator x.y")``);
    * ``prospect.io.write_results.write_hdf5(..., sps=sps)`` writes the
      ``bestfit`` group (best-fit photometry, parameters and mfrac) that
      Prospector's plotting recipes read; the best-fit "spectrum" and
      ``restframe_wavelengths`` are empty arrays (a photometric emulator).

    Parameters
    ----------
    emulator : Emulator, StitchedEmulator, str or None
        Only read for the description of its SPS (default: none recorded).
    """

    #: No spectrum: the rest-frame wavelength grid of the best-fit "spectrum" (AA).
    wavelengths = np.zeros(0)

    def __init__(self, emulator=None):
        sps = "SPS of the model's emulator (EmulatorSPS(emulator) records it)"
        if emulator is not None:
            from .model import _as_emulator
            emu = _as_emulator(emulator)
            members = getattr(emu, "members", None)
            prov = (members[0] if members else emu).provenance or {}
            sps = str(prov.get("sps", sps))
        self.ssp = _Libraries(("emulator", sps, f"prospect-emulator {__version__}"))

    def get_galaxy_spectrum(self, **params):
        raise EmulatorConfigurationError(
            "EmulatorSPS computes no spectra: it stands in for the SPS of an EmulatedSpecModel "
            "fit (which ignores sps). Use a real SPS source with a SpecModel.")

    def __repr__(self):
        return f"EmulatorSPS(libraries={self.ssp.libraries!r})"
