"""Prospector parameter file: fit the example galaxy with the default emulator.

The twin of ``param_file_sps.py``; ``diff`` the two files: the only differences are
the model class in ``build_model``, the source in ``build_sps`` and the noise model in
``build_noise``.

    python demos/param_file_emulator.py --dynesty --nested_sample rwalk --nlive_init 200 \
        --nested_target_n_effective 2000 --outfile emulator_fit

(Prospector's own ``prospect_args`` flags: ``--nlive_init`` sets dynesty's initial live
points; ``--nested_sample rwalk`` replaces the default ``slice`` sampler, which is several
times slower here.)
"""
import time

import numpy as np
from prospect import prospect_args
from prospect.fitting import fit_model
from prospect.io import write_results as writer

from prospect_emulator.data import EXAMPLE_GALAXY_PATH
from prospect_emulator.fitting.models import fitting_model_params
from prospect_emulator import EmulatedSpecModel, EmulatorNoiseModel, EmulatorSPS


def build_obs(objid="example", **extras):
    """The bundled example galaxy: photometry in maggies through sedpy filters."""
    from astropy.table import Table
    from prospect.utils.obsutils import fix_obs
    from sedpy.observate import load_filters
    row = Table.read(EXAMPLE_GALAXY_PATH)[0]
    names = [c[2:] for c in row.colnames if c.startswith("f_")]
    obs = {"filters": load_filters(names),
           "maggies": np.array([row[f"f_{n}"] for n in names]),
           "maggies_unc": np.array([row[f"e_{n}"] for n in names]),
           "wavelength": None, "spectrum": None, "unc": None, "mask": None,
           "zred": float(row["z"])}
    return fix_obs(obs)


def build_model(zred=1.3, **extras):
    """Continuity SFH + dust + dust emission + nebular emission at fixed redshift,
    with the priors of Mathews et al. (2023) Table 1."""
    model_params = fitting_model_params(zred)
    return EmulatedSpecModel(model_params, emulator="default")


def build_sps(**extras):
    """No SPS is run; this stands in for one where Prospector's script reads it
    (``write_hdf5(..., sps=sps)`` then writes the ``bestfit`` group)."""
    return EmulatorSPS("default")


def build_noise(**extras):
    """Observational + emulator error (paper eq. 9) + 5% floor; made without a model
    (Prospector calls ``build_noise(**run_params)``), it binds to the model being fitted."""
    return None, EmulatorNoiseModel()


def build_all(**kwargs):
    obs = build_obs(**kwargs)
    model = build_model(zred=obs["zred"], **kwargs)
    return obs, model, build_sps(**kwargs), build_noise(**kwargs)


if __name__ == "__main__":
    parser = prospect_args.get_parser()
    args = parser.parse_args()
    run_params = vars(args)
    obs, model, sps, noise = build_all(**run_params)
    run_params["param_file"] = __file__
    hfile = f"{args.outfile}_{int(time.time())}_result.h5"
    output = fit_model(obs, model, sps, noise, **run_params)
    writer.write_hdf5(hfile, run_params, model, obs, output["sampling"][0],
                      output["optimization"][0], tsample=output["sampling"][1],
                      toptimize=output["optimization"][1], sps=sps)
    print(f"wrote {hfile}")
