"""Data shipped with the package: the default emulator, its filter list and
the bundled example galaxy."""
import os

__all__ = ["DATA_DIR", "DEFAULT_EMULATOR_PATH", "default_emulator", "default_filter_names",
           "EXAMPLE_GALAXY_PATH", "COSMOS_FILTERS"]

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
#: The shipped default emulator (native HDF5; see docs/default_emulator.md).
DEFAULT_EMULATOR_PATH = os.path.join(DATA_DIR, "default_emulator.h5")
#: Photometry of the bundled example galaxy (ECSV; maggies).
EXAMPLE_GALAXY_PATH = os.path.join(DATA_DIR, "example_galaxy.ecsv")

#: A realistic 3D-HST COSMOS-like subset of the default emulator's bands (sedpy
#: names): the bands of the example galaxy and of the posterior validation mocks.
COSMOS_FILTERS = (
    "cfht_megacam_us_9301", "cfht_megacam_gs_9401", "cfht_megacam_rs_9601",
    "cfht_megacam_is_9701", "cfht_megacam_zs_9801", "subaru_suprimecam_B",
    "subaru_suprimecam_V", "subaru_suprimecam_rp", "subaru_suprimecam_ip",
    "subaru_suprimecam_zp", "subaru_suprimecam_ia484", "subaru_suprimecam_ia624",
    "subaru_suprimecam_ia738", "vista_vircam_Y", "vista_vircam_J", "vista_vircam_H",
    "vista_vircam_Ks", "acs_wfc_f606w", "acs_wfc_f814w", "wfc3_ir_f125w", "wfc3_ir_f140w",
    "wfc3_ir_f160w", "spitzer_irac_ch1", "spitzer_irac_ch2", "spitzer_irac_ch3",
    "spitzer_irac_ch4", "spitzer_mips_24")


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
