"""Data shipped with the package: the default emulator, its filter list and
the bundled example galaxy."""
import os

__all__ = ["DATA_DIR", "DEFAULT_EMULATOR_PATH", "default_emulator", "default_filter_names",
           "EXAMPLE_GALAXY_PATH"]

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
#: The shipped default emulator (native HDF5; see docs/default_emulator.md).
DEFAULT_EMULATOR_PATH = os.path.join(DATA_DIR, "default_emulator.h5")
#: Photometry of the bundled example galaxy (ECSV; maggies).
EXAMPLE_GALAXY_PATH = os.path.join(DATA_DIR, "example_galaxy.ecsv")


def default_filter_names():
    """sedpy names of the default emulator's filters (``default_filters.txt``)."""
    with open(os.path.join(DATA_DIR, "default_filters.txt")) as f:
        return [w for line in f if not line.lstrip().startswith("#") for w in line.split()]


def default_emulator():
    """The shipped default emulator, trained on ``BagpipesBasis`` with the
    ``default`` preset (15 inputs) for :func:`default_filter_names`.

    Returns
    -------
    Emulator or StitchedEmulator
    """
    from ..runtime import load_emulator
    return load_emulator(DEFAULT_EMULATOR_PATH)
