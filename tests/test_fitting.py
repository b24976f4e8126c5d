"""Fitting galaxies: derived SFH quantities, catalogues, the shipped emulator, the demo."""
import json
import os

import numpy as np
import pytest

from prospect_emulator import EmulatorConfigurationError
from prospect_emulator.data import EXAMPLE_GALAXY_PATH, default_emulator, default_filter_names
from prospect_emulator.fitting.catalog import CatalogColumns, fit_catalog, read_catalog
from prospect_emulator.fitting.derived import step_sfh_summary

#: dynesty settings small enough for a test (the posterior is not the point here)
TINY = {"nested_nlive_init": 30, "nested_nlive_batch": 30, "nested_target_n_effective": 50,
        "nested_maxbatch": 0, "nested_dlogz_init": 5.0}


# --------------------------------------------------------- derived quantities
class TestStepSFHSummary:
    agebins = np.log10([[1.0, 3e7], [3e7, 1e8], [1e8, 1e9]])
    agebins[0, 0] = 0.0  # Prospector's first edge: log10(age) = 0 means "now"

    def test_constant_sfr(self):
        dt = np.array([3e7, 7e7, 9e8])
        out = step_sfh_summary(self.agebins, 2.0 * dt, mfrac=0.6)  # 2 Msun/yr throughout
        assert out["logsfr_100myr"] == pytest.approx(np.log10(2.0))
        assert out["logsfr_30myr"] == pytest.approx(np.log10(2.0))
        assert out["logmass_formed"] == pytest.approx(np.log10(2e9))
        assert out["logmstar"] == pytest.approx(np.log10(2e9 * 0.6))
        # constant SFR over 0..1 Gyr: mass-weighted age 0.5 Gyr
        assert out["mwa_gyr"] == pytest.approx(0.5)

    def test_all_mass_in_the_oldest_bin(self):
        out = step_sfh_summary(self.agebins, [0.0, 0.0, 1e10])
        assert out["logsfr_100myr"] == -np.inf
        assert out["mwa_gyr"] == pytest.approx(0.55)
        assert np.isnan(out["logmstar"])  # mfrac unknown


# ------------------------------------------------------------------ catalogues
def write_catalog(path, rows, filters):
    from astropy.table import Table
    Table(rows=rows, names=["id", "z"] + [f"{p}_{f}" for f in filters for p in ("f", "e")]).write(
        path, overwrite=True)


class TestReadCatalog:
    filters = ["sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0"]

    def row(self, oid, z, flux=1e-9):
        return [oid, z] + [v for _ in self.filters for v in (flux, flux / 10)]

    def test_malformed_rows_are_reported_not_fatal(self, tmp_path):
        path = str(tmp_path / "cat.csv")
        bad_bands = self.row("few", 1.0)
        bad_bands[4:] = [np.nan] * (len(bad_bands) - 4)  # only one band left
        write_catalog(path, [self.row("good", 1.0), self.row("noz", np.nan), bad_bands],
                      self.filters)
        records, filters = read_catalog(path, CatalogColumns(), self.filters + ["twomass_J"])
        assert filters == self.filters  # only the filters the table has
        by_id = {r["id"]: r for r in records}
        assert "error" not in by_id["good"]
        assert "redshift" in by_id["noz"]["error"]
        assert "only 1 band" in by_id["few"]["error"]

    def test_units_and_templates(self, tmp_path):
        from astropy.table import Table
        path = str(tmp_path / "cat.ecsv")
        Table({"ID": ["a"], "zspec": [1.0], "F_sdss_g0": [3631e6 * 1e-9], "E_sdss_g0": [3631e5 * 1e-9],
               "F_sdss_r0": [1.0], "E_sdss_r0": [0.1], "F_sdss_i0": [1.0], "E_sdss_i0": [0.1]}
              ).write(path)
        cols = CatalogColumns("F_{filter}", "E_{filter}", zred="zspec", id="ID", unit="uJy")
        (rec,), filters = read_catalog(path, cols, self.filters)
        assert filters == ["sdss_g0", "sdss_r0", "sdss_i0"]
        assert rec["maggies"][0] == pytest.approx(1e-9)  # 3.631 uJy = 1e-9 maggies
        assert rec["id"] == "a" and rec["zred"] == 1.0

    def test_configuration_errors_name_what_is_allowed(self, tmp_path):
        path = str(tmp_path / "cat.csv")
        write_catalog(path, [self.row("a", 1.0)], self.filters)
        with pytest.raises(EmulatorConfigurationError, match="no column pairs 'flux_"):
            read_catalog(path, CatalogColumns("flux_{filter}", "err_{filter}"), self.filters)
        with pytest.raises(EmulatorConfigurationError, match="no redshift column 'zphot'"):
            read_catalog(path, CatalogColumns(zred="zphot"), self.filters)
        with pytest.raises(EmulatorConfigurationError, match="allowed: maggies, Jy"):
            CatalogColumns(unit="erg")
        with pytest.raises(EmulatorConfigurationError, match="need '{filter}'"):
            CatalogColumns(flux="FLUX")
        with pytest.raises(EmulatorConfigurationError, match="no catalogue at"):
            read_catalog(str(tmp_path / "missing.csv"), CatalogColumns(), self.filters)
        garbage = tmp_path / "garbage.fits"
        garbage.write_bytes(b"not a table at all")
        with pytest.raises(EmulatorConfigurationError, match="cannot read .* as a table"):
            read_catalog(str(garbage), CatalogColumns(), self.filters)
        write_catalog(path, [self.row("a", 1.0), self.row("a", 1.2)], self.filters)
        with pytest.raises(EmulatorConfigurationError, match="not unique"):
            read_catalog(path, CatalogColumns(), self.filters)


class TestFluxUnitPlausibility:
    filters = ["sdss_g0", "sdss_r0", "sdss_i0"]

    def write(self, path, flux):
        from astropy.table import Table
        cols = {"id": ["a", "b"], "z": [1.0, 1.0]}
        for f in self.filters:
            cols[f"f_{f}"], cols[f"e_{f}"] = [flux, 2 * flux], [flux / 10, flux / 5]
        Table(cols).write(path, overwrite=True)

    def test_fluxes_of_order_one_are_not_maggies(self, tmp_path):
        path = str(tmp_path / "cat.ecsv")
        self.write(path, 3.0)  # microjanskys, really
        with pytest.raises(EmulatorConfigurationError,
                           match=r"column 'f_sdss_\w+': median flux .* maggies .*allowed: "
                                 r"maggies, Jy, mJy, uJy, nJy"):
            read_catalog(path, CatalogColumns(unit="maggies"), self.filters)
        (rec, _), _ = read_catalog(path, CatalogColumns(unit="uJy"), self.filters)
        assert rec["maggies"][0] == pytest.approx(3.0e-6 / 3631)

    def test_maggies_called_nanojanskys_are_refused(self, tmp_path):
        path = str(tmp_path / "cat.ecsv")
        self.write(path, 1e-9)
        with pytest.raises(EmulatorConfigurationError, match="median uncertainty .* 'nJy' cannot"):
            read_catalog(path, CatalogColumns(unit="nJy"), self.filters)
        read_catalog(path, CatalogColumns(unit="maggies"), self.filters)


class TestFitCommandGuards:
    def test_too_few_live_points_are_refused(self, capsys):
        from prospect_emulator.cli.main import main
        assert main(["fit", EXAMPLE_GALAXY_PATH, "--out", "unused", "--sampler", "dynesty",
                     "--nlive", "20"]) == 2
        err = capsys.readouterr().err
        assert "--nlive" in err and "below twice the 14 free parameters" in err
        assert not os.path.exists("unused")

    def test_a_negative_floor_is_refused_and_zero_allowed(self, capsys):
        from prospect_emulator.cli.main import build_parser
        parser = build_parser()
        with pytest.raises(SystemExit):
            parser.parse_args(["fit", "cat.csv", "--out", "x", "--floor", "-0.1"])
        assert "fraction >= 0" in capsys.readouterr().err
        args = parser.parse_args(["fit", "cat.csv", "--out", "x", "--floor", "0", "--seed", "4"])
        assert args.floor == 0.0 and args.seed == 4
        assert parser.parse_args(["demo"]).floor == 0.05

    def test_wrong_flux_unit_is_refused_by_the_command(self, tmp_path, capsys):
        from prospect_emulator.cli.main import main
        path = str(tmp_path / "cat.ecsv")
        TestFluxUnitPlausibility().write(path, 1e-9)
        assert main(["fit", path, "--out", str(tmp_path / "out"), "--flux-unit", "nJy"]) == 2
        assert "flux unit 'nJy' cannot be right" in capsys.readouterr().err


# ------------------------------------------------------- the shipped emulator
def test_default_emulator_is_shipped_with_its_statistics():
    emu = default_emulator()
    assert emu.filter_names == default_filter_names()
    assert len(emu.filter_names) == 81
    assert "zred" in emu.param_names and "logmass" in emu.param_names
    assert emu.extra_names == ["mfrac"]
    assert np.all(np.isfinite(emu.residual_stats)) and np.all(emu.residual_sigma > 0)
    assert emu.provenance.get("sps", "").lower().startswith("bagpipes")


@pytest.mark.slow
def test_catalogue_fit_writes_results_skips_bad_rows_and_resumes(tmp_path):
    """Real Prospector + dynesty fits of the bundled galaxy through the command line."""
    from astropy.table import Table
    from prospect_emulator.cli.main import main
    example = Table.read(EXAMPLE_GALAXY_PATH)
    bad = example.copy()
    bad["id"] = ["outside"]
    bad["z"] = [9.0]  # outside the emulator's redshift range
    cat = str(tmp_path / "cat.ecsv")
    from astropy.table import vstack
    vstack([example, bad]).write(cat)
    out = str(tmp_path / "fits")
    args = [cat, "--out", out, "--workers", "1", "--sampler", "dynesty", "--nlive", "30",
            "--n-effective", "50", "--no-progress"]
    assert main(["fit"] + args) == 0
    assert os.path.exists(os.path.join(out, "example.h5"))
    with open(os.path.join(out, "example.json")) as f:
        result = json.load(f)
    assert result["status"] == "ok"
    assert set(result["percentiles"]) >= {"logmass", "logmstar", "logsfr_100myr", "mwa_gyr",
                                          "logzsol", "dust2"}
    assert "outside the emulator's range" in open(os.path.join(out, "skipped.txt")).read()
    summary = Table.read(os.path.join(out, "summary.ecsv"))
    assert list(summary["id"]) == ["example"]
    p16, p50, p84 = (summary[f"logmass_p{p}"][0] for p in (16, 50, 84))
    assert p16 <= p50 <= p84
    from prospect.io.read_results import results_from
    res, obs, _ = results_from(os.path.join(out, "example.h5"))
    assert res["chain"].shape[1] == len(result["percentiles"]) - 5  # free params + 5 derived
    # a second run finds nothing left to do
    mtime = os.path.getmtime(os.path.join(out, "example.json"))
    table = fit_catalog(cat, out, default_emulator_path(), workers=1, nested_kwargs=TINY, sampler="dynesty",
                        progress=False)
    assert os.path.getmtime(os.path.join(out, "example.json")) == mtime
    assert len(table) == 1


def default_emulator_path():
    from prospect_emulator.data import DEFAULT_EMULATOR_PATH
    return DEFAULT_EMULATOR_PATH


class TestParametricSFHSummary:
    """Derived quantities of a tau / delayed-tau SFH against a direct integration."""

    @pytest.mark.parametrize("sfh, tage, tau", [(4, 8.0, 2.0), (4, 0.5, 10.0), (1, 3.0, 0.3)])
    def test_against_numerical_integration(self, sfh, tage, tau):
        from prospect_emulator.fitting.derived import parametric_sfh_summary
        t = np.linspace(0.0, tage, 2_000_001)              # Gyr since the start
        sfr = np.exp(-t / tau) * (t if sfh == 4 else 1.0)
        sfr *= 1e10 / np.trapezoid(sfr, t) / 1e9            # Msun/yr, 1e10 Msun formed
        got = parametric_sfh_summary(sfh, tage, tau, 1e10, mfrac=0.6)
        last = t >= tage - 0.1
        expected_sfr = np.trapezoid(sfr[last], t[last]) * 1e9 / 1e8
        mwa = np.trapezoid(sfr * (tage - t), t) / np.trapezoid(sfr, t)
        assert got["logmass_formed"] == pytest.approx(10.0)
        assert got["logmstar"] == pytest.approx(10.0 + np.log10(0.6))
        assert got["logsfr_100myr"] == pytest.approx(np.log10(expected_sfr), abs=1e-4)  # grid step
        assert got["mwa_gyr"] == pytest.approx(mwa, rel=1e-5)

    def test_the_model_kind_chooses_the_summary(self):
        from prospect_emulator.fitting.derived import sfh_summary
        params = {"sfh": np.array([4]), "tage": np.array([2.0]), "tau": np.array([1.0]),
                  "mass": np.array([1e9])}
        assert sfh_summary(params)["logmass_formed"] == pytest.approx(9.0)
        assert sfh_summary({"sfh": np.array([5]), "mass": np.array([1.0])}) is None
