"""Fit-time runtime: NumPy only (importing this never imports TensorFlow)."""
from .emulator import Emulator, gelu_tanh, RESIDUAL_STAT_COLUMNS
from .stitched import StitchedEmulator
from .fileformat import load_emulator, save_emulator
from .magnitudes import (ARSINH_A, ARSINH_MU0, arsinh_mags_to_maggies, dmaggies_dmag,
                         maggies_to_arsinh_mags)
