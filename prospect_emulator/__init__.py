"""prospect-emulator: neural-network SPS emulators for Prospector.

The public API::

    Emulator, StitchedEmulator, load_emulator      # NumPy runtime (runtime/)
    EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS   # Prospector integration (prospector/)
    maggies_to_arsinh_mags, arsinh_mags_to_maggies, dmaggies_dmag

Training (TensorFlow) lives in :mod:`prospect_emulator.training`, SPS sources
in :mod:`prospect_emulator.sources`; neither is imported here.
"""
from ._version import __version__
from .errors import (EmulatorConfigurationError, EmulatorError, EmulatorFileError,
                     NonFiniteInputError, OutOfTrainingRangeError)
from .runtime import (Emulator, StitchedEmulator, load_emulator, arsinh_mags_to_maggies,
                      dmaggies_dmag, maggies_to_arsinh_mags)

# The Prospector integration imports Prospector (seconds); load it on first use
# so that `import prospect_emulator` stays light for runtime-only users.
_PROSPECTOR_NAMES = ("EmulatedSpecModel", "EmulatorNoiseModel", "EmulatorSPS",
                     "inflate_obs_uncertainties", "TrainingRangeWarning",
                     "PhysicsNotCheckedWarning", "VectorisedLikelihood")


def __getattr__(name):
    if name in _PROSPECTOR_NAMES:
        from . import prospector
        return getattr(prospector, name)
    if name == "default_emulator":
        from .data import default_emulator
        return default_emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Emulator", "StitchedEmulator", "load_emulator", "maggies_to_arsinh_mags",
           "arsinh_mags_to_maggies", "dmaggies_dmag", "EmulatorError",
           "EmulatorConfigurationError", "EmulatorFileError", "NonFiniteInputError",
           "OutOfTrainingRangeError", "default_emulator", *_PROSPECTOR_NAMES]
