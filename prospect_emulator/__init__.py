"""prospect-emulator: neural-network SPS emulators for Prospector.

The public API::

    Emulator, StitchedEmulator, load_emulator      # NumPy runtime (runtime/)
    EmulatedSpecModel, EmulatorNoiseModel          # Prospector integration (prospector/)
    maggies_to_arsinh_mags, arsinh_mags_to_maggies, dmaggies_dmag

Training (TensorFlow) lives in :mod:`prospect_emulator.training`, SPS sources
in :mod:`prospect_emulator.sources`; neither is imported here.
"""
from ._version import __version__
from .errors import (EmulatorConfigurationError, EmulatorError, EmulatorFileError,
                     NonFiniteInputError, OutOfTrainingRangeError)
from .runtime import (Emulator, StitchedEmulator, load_emulator, arsinh_mags_to_maggies,
                      dmaggies_dmag, maggies_to_arsinh_mags)
