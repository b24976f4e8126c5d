"""Data shipped with the package: the default emulator, its filter list and
the bundled example galaxy."""
import os

__all__ = ["DATA_DIR", "DEFAULT_EMULATOR_PATH", "PARAMETRIC_EMULATOR_PATH", "SHIPPED_EMULATORS",
           "default_emulator", "default_filter_names", "shipped_emulator_for",
           "EXAMPLE_GALAXY_PATH", "COSMOS_FILTERS"]

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
#: The shipped default emulator (native HDF5; see docs/default_emulator.md).
DEFAULT_EMULATOR_PATH = os.path.join(DATA_DIR, "default_emulator.h5")
#: The shipped emulator of Prospector's parametric_sfh template (delayed tau,
#: 0 < z <= 3; see docs/parametric_emulator.md).
PARAMETRIC_EMULATOR_PATH = os.path.join(DATA_DIR, "parametric_emulator.h5")
#: Shipped emulators by name.
SHIPPED_EMULATORS = {"default": DEFAULT_EMULATOR_PATH, "parametric": PARAMETRIC_EMULATOR_PATH}
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


def shipped_emulator_for(model_params):
    """Name of the shipped emulator whose physics a Prospector model asks for.

    A parametric SFH (``sfh`` 1 or 4, or ``tage``/``tau`` without ``agebins``)
    -> ``"parametric"``; otherwise ``"default"`` (continuity SFH).

    Parameters
    ----------
    model_params : dict, list of dict or Prospector model
    """
    import numpy as np
    if hasattr(model_params, "config_dict"):
        specs = model_params.config_dict
    elif isinstance(model_params, dict):
        specs = model_params
    else:
        specs = {p["name"]: p for p in model_params}
    sfh = specs.get("sfh", {}).get("init")
    sfh = None if sfh is None else int(np.ravel(sfh)[0])
    if sfh in (1, 4) or (sfh is None and "agebins" not in specs
                         and ("tage" in specs or "tau" in specs)):
        return "parametric"
    return "default"


def default_emulator(name=None, model=None):
    """A shipped emulator, by name or by the model it is for.

    Parameters
    ----------
    name : {"default", "parametric"}, optional
        ``"default"``: trained on ``BagpipesBasis`` with the ``default`` preset
        (15 inputs, continuity SFH) for :func:`default_filter_names`;
        ``"parametric"``: Prospector's ``parametric_sfh`` template (6 inputs)
        for the same filters.
    model : dict, list or Prospector model, optional
        Without ``name``: choose the emulator for this model's SFH
        (:func:`shipped_emulator_for`).

    Returns
    -------
    Emulator or StitchedEmulator
    """
    from ..errors import EmulatorConfigurationError
    from ..runtime import load_emulator
    if name is None:
        name = shipped_emulator_for(model) if model is not None else "default"
    if name not in SHIPPED_EMULATORS:
        raise EmulatorConfigurationError(
            f"no shipped emulator named {name!r}; available: {', '.join(SHIPPED_EMULATORS)}")
    return load_emulator(SHIPPED_EMULATORS[name])
