"""SPS sources: BagpipesBasis serves Prospector's SpecModel.predict without FSPS.

The reference is Bagpipes itself: the same galaxy through
``bagpipes.model_galaxy(components, filt_list=...)`` (the same sedpy filter
curves, written to files) must give the same photometry in every band as
``SpecModel.predict(theta, obs, sps=BagpipesBasis())``, once Bagpipes' flux is
moved from its cosmology (flat LCDM, H0 = 70, Om = 0.3) to Prospector's
(WMAP9).  Both normalise to the stellar mass *formed*, so the mass-definition
factor is 1.
"""
import contextlib
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from prospect.models.templates import TemplateLibrary
from prospect.sources.constants import cosmo as prospector_cosmo
from sedpy.observate import load_filters

from prospect_emulator.errors import EmulatorConfigurationError, NonFiniteInputError
from prospect_emulator.sources import (BagpipesBasis, BagpipesSpecModel, FSPSUnavailableError,
                                       SPSParameterRangeError, UnsupportedSPSParameterError,
                                       bagpipes_emline_info, fsps_unavailable_reason, make_sps,
                                       make_spec_model)

trapezoid = getattr(np, "trapezoid", None) or np.trapz   # numpy < 2 has only trapz

AV_PER_TAU = 2.5 * np.log10(np.e)   # Bagpipes' A_V (mag) per FSPS optical depth at 5500 AA
C_AA = 2.998e18
MAGGIE_CGS = 3631e-23


pytestmark = pytest.mark.usefixtures("no_sps_home")  # no FSPS data needed


# ---------------------------------------------------------------------------
# Galaxies, as Prospector model parameters and as Bagpipes components
# ---------------------------------------------------------------------------
def _fixed(*templates, **values):
    params = {}
    for name in templates:
        params.update(TemplateLibrary[name])
    for p in params.values():
        p["isfree"] = False
        p.pop("prior", None)
    for name, value in values.items():
        n = np.size(value) if name != "agebins" else len(value)
        params[name] = {"N": n, "isfree": False, "init": value}
    return params


def continuity_galaxy_z1():
    """Step SFH (6 bins to 5 Gyr) at z = 1, Kriek & Conroy dust, nebular + dust emission."""
    agebins = np.log10([[1.0, 3e7], [3e7, 1e8], [1e8, 3e8], [3e8, 1e9], [1e9, 3e9], [3e9, 5e9]])
    masses = np.array([2e8, 3e8, 1e9, 3e9, 6e9, 4e9])
    params = _fixed("continuity_sfh", "nebular", "dust_emission", "igm",
                    agebins=agebins, mass=masses, zred=1.0, logzsol=-0.3, dust2=0.5,
                    dust_type=4, dust_index=0.0, imf_type=2, gas_logu=-2.5,
                    duste_qpah=2.5, duste_umin=2.0, duste_gamma=0.05)
    for name in ("logmass", "logsfr_ratios"):
        params.pop(name)
    params["gas_logz"]["depends_on"] = _stellar_logzsol
    # Bagpipes' continuity SFH: dsfr_i = log10(SFR_(i+1)/SFR_i), bins counted from the oldest
    sfr_oldest_first = (masses / np.diff(np.r_[0.0, 10 ** agebins[:, 1]]))[::-1]
    continuity = {"massformed": np.log10(masses.sum()), "metallicity": 10 ** -0.3,
                  "bin_edges": list(np.r_[0.0, 10 ** agebins[:, 1] / 1e6])}
    for i in range(1, masses.size):
        continuity[f"dsfr{i}"] = np.log10(sfr_oldest_first[i] / sfr_oldest_first[i - 1])
    # Kriek & Conroy (2013) with dust_index = 0 is Bagpipes' "Salim" curve with
    # delta = 0 and bump B = 0.85 (above 1200 AA, where both use Calzetti's polynomial)
    components = {"redshift": 1.0, "continuity": continuity, "nebular": {"logU": -2.5},
                  "dust": {"type": "Salim", "Av": 0.5 * AV_PER_TAU, "delta": 0.0, "B": 0.85,
                           "qpah": 2.5, "umin": 2.0, "gamma": 0.05}}
    # below rest 1200 AA FSPS's Calzetti polynomial and Bagpipes' power-law extension
    # differ (docs/sources.md): no band there at z = 1
    filters = [f for f in FILTERS if f != "galex_NUV"]
    return params, components, filters


def delayed_tau_galaxy_z2():
    """Delayed-tau SFH at z = 2, power-law dust with birth clouds, nebular + dust emission."""
    params = _fixed("parametric_sfh", "nebular", "dust_emission", "igm",
                    zred=2.0, mass=3e10, tage=1.5, tau=0.8, logzsol=-0.5, dust_type=0,
                    dust2=0.4, dust_index=-0.7, dust1=0.6, dust1_index=-0.7, imf_type=2,
                    gas_logu=-2.0, duste_qpah=3.19, duste_umin=5.0, duste_gamma=0.1)
    params["gas_logz"]["depends_on"] = _stellar_logzsol
    # FSPS's birth-cloud power law with dust1_index = dust_index is Bagpipes' CF00
    # with eta = 1 + dust1/dust2
    components = {"redshift": 2.0,
                  "delayed": {"age": 1.5, "tau": 0.8, "massformed": np.log10(3e10),
                              "metallicity": 10 ** -0.5},
                  "nebular": {"logU": -2.0},
                  "dust": {"type": "CF00", "Av": 0.4 * AV_PER_TAU, "n": 0.7, "eta": 1 + 0.6 / 0.4,
                           "qpah": 3.19, "umin": 5.0, "gamma": 0.1}}
    return params, components, FILTERS


def tau_galaxy_z03():
    """Exponential SFH at z = 0.3, no dust, no nebular emission."""
    params = _fixed("parametric_sfh", "igm", zred=0.3, mass=1e10, sfh=1, tage=6.0, tau=2.0,
                    logzsol=0.2, dust2=0.0, imf_type=2)
    components = {"redshift": 0.3,
                  "exponential": {"age": 6.0, "tau": 2.0, "massformed": 10.0,
                                  "metallicity": 10 ** 0.2}}
    return params, components, FILTERS


def _stellar_logzsol(logzsol=0.0, **extras):
    return logzsol


FILTERS = ["galex_NUV", "sdss_u0", "sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0", "twomass_J",
           "twomass_H", "twomass_Ks", "spitzer_irac_ch1", "spitzer_irac_ch3", "wise_w3",
           "wise_w4", "spitzer_mips_24", "jwst_f410m", "jwst_f460m", "herschel_pacs_100",
           "herschel_spire_250"]
GALAXIES = {"continuity_z1": continuity_galaxy_z1, "delayed_tau_z2": delayed_tau_galaxy_z2,
            "tau_z0.3": tau_galaxy_z03}


def prospector_photometry(model_params, filter_names, sps):
    """Maggies and mfrac from SpecModel.predict with this SPS source."""
    model = make_spec_model(model_params, sps)
    obs = {"filters": load_filters(filter_names), "wavelength": None, "spectrum": None}
    _, phot, mfrac = model.predict(model.theta, obs=obs, sps=sps)
    return phot, mfrac


def _quiet_bagpipes():
    with contextlib.redirect_stdout(io.StringIO()):
        import bagpipes
    return bagpipes


def bagpipes_photometry(components, filter_names, tmp_path, resolution=None):
    """Maggies of ``bagpipes.model_galaxy`` in Prospector's cosmology, and the model.

    Bagpipes returns the photon-weighted mean f_lambda in each filter; times
    lambda_pivot^2 / c it is the AB flux density sedpy computes.  Its fluxes use
    D_L of flat LCDM (70, 0.3); Prospector's use WMAP9: the documented factor
    (D_L,Bagpipes / D_L,WMAP9)^2 moves them over.  Mass factor: 1 (mass formed).
    """
    bagpipes = _quiet_bagpipes()
    filters = load_filters(filter_names)
    files = []
    for f in filters:
        path = tmp_path / f"{f.name}.dat"
        np.savetxt(path, np.c_[f.wavelength, f.transmission])
        files.append(str(path))
    saved = bagpipes.config.R_phot
    try:
        if resolution is not None:
            bagpipes.config.R_phot = resolution
        galaxy = bagpipes.model_galaxy(dict(components), filt_list=files)
    finally:
        bagpipes.config.R_phot = saved
    pivot_sq = np.array([trapezoid(f.wavelength * f.transmission, f.wavelength)
                         / trapezoid(f.transmission / f.wavelength, f.wavelength)
                         for f in filters])
    maggies = galaxy.photometry * pivot_sq / C_AA / MAGGIE_CGS
    z = components["redshift"]
    dl_bagpipes = np.interp(z, bagpipes.utils.z_array, bagpipes.utils.ldist_at_z)
    dl_prospector = prospector_cosmo.luminosity_distance(z).to("Mpc").value
    return maggies * (dl_bagpipes / dl_prospector) ** 2, galaxy


# ---------------------------------------------------------------------------
# Agreement with Bagpipes' own model_galaxy
# ---------------------------------------------------------------------------
class TestAgreesWithBagpipesModelGalaxy:
    """Photometry through Prospector equals Bagpipes' photometry in every band.

    Tolerance 0.02 mag per band.  Measured differences are <= 0.014 mag
    (median 0.003); their causes: Bagpipes discretises the SFH on a 0.0025 dex
    age grid (its SSP weights are off by 0.2-0.3 %, BagpipesBasis integrates
    the SFH exactly), and Bagpipes resamples each filter curve onto its grid
    and interpolates it again at (1 + z) lambda where sedpy interpolates once,
    which shows in a filter with sharp structure (2MASS J: 0.013 mag on
    Bagpipes' R = 100 grid).  On a different grid, each code's own sampling
    error adds (< 0.006 mag at R = 300 for both).
    """

    @pytest.mark.parametrize("galaxy", list(GALAXIES))
    def test_same_wavelength_grid(self, galaxy, tmp_path):
        params, components, filters = GALAXIES[galaxy]()
        expected, bagpipes_galaxy = bagpipes_photometry(components, filters, tmp_path)
        sps_on_bagpipes_grid = BagpipesBasis(wavelengths=bagpipes_galaxy.wavelengths)
        phot, _ = prospector_photometry(params, filters, sps_on_bagpipes_grid)
        dmag = -2.5 * np.log10(phot / expected)
        assert np.all(np.abs(dmag) < 0.02), dict(zip(filters, np.round(dmag, 4)))
        # Bagpipes' stellar mass counts living stars only: FSPS's add_stellar_remnants=False
        params["add_stellar_remnants"] = {"N": 1, "isfree": False, "init": False}
        _, mfrac_living = prospector_photometry(params, filters, sps_on_bagpipes_grid)
        sfh = bagpipes_galaxy.sfh
        assert mfrac_living == pytest.approx(10 ** (sfh.stellar_mass - sfh.formed_mass), rel=2e-3)

    @pytest.mark.parametrize("galaxy", list(GALAXIES))
    def test_default_grid(self, galaxy, sps, tmp_path):
        params, components, filters = GALAXIES[galaxy]()
        # Bagpipes at R = 300 too, so that neither code's sampling error dominates
        expected, _ = bagpipes_photometry(components, filters, tmp_path, resolution=300)
        phot, _ = prospector_photometry(params, filters, sps)
        dmag = -2.5 * np.log10(phot / expected)
        assert np.all(np.abs(dmag) < 0.02), dict(zip(filters, np.round(dmag, 4)))


# ---------------------------------------------------------------------------
# Physics and units
# ---------------------------------------------------------------------------
def _spectrum(sps, **params):
    defaults = dict(agebins=np.log10([[1.0, 1e8], [1e8, 1e9], [1e9, 5e9]]),
                    mass=np.array([1e9, 2e9, 4e9]), imf_type=2, dust_type=4)
    defaults.update(params)
    return sps.get_galaxy_spectrum(**defaults)


class TestSpectrum:
    def test_units_are_lsun_per_hz_per_msun_formed(self, sps):
        wave, spec, mfrac = _spectrum(sps)
        assert wave.shape == spec.shape and np.all(np.diff(wave) > 0)
        # scaling every bin mass leaves the per-mass spectrum unchanged
        _, spec10, _ = _spectrum(sps, mass=np.array([1e10, 2e10, 4e10]))
        np.testing.assert_allclose(spec10, spec, rtol=1e-12)
        # the Sun emits L_nu(5500 AA) = 1.3e-15 Lsun/Hz (M_V = 4.83); this population,
        # 1/7 of it younger than 100 Myr, has a V-band M/L of a few tenths
        v = np.argmin(np.abs(wave - 5500.0))
        assert 0.1 < 1.3e-15 / spec[v] < 1.0

    def test_mfrac_is_surviving_over_formed_mass(self, sps):
        young = _spectrum(sps, agebins=np.log10([[1.0, 3e6], [3e6, 1e7]]), mass=np.ones(2))
        old_bins = dict(agebins=np.log10([[1.0, 1e9], [1e9, 1.3e10]]), mass=np.array([0.0, 1.0]))
        old = _spectrum(sps, **old_bins)
        assert 0.9 < young[2] <= 1.0   # winds and supernovae of the most massive stars
        # stars + remnants of a 1-13 Gyr population: ~0.6 (Kroupa IMF, as FSPS)
        assert 0.55 < old[2] < 0.65
        assert old[2] < _spectrum(sps)[2] < young[2]
        # living stars only (Bagpipes' definition): remnants are ~1/4 of what is left
        living = _spectrum(sps, add_stellar_remnants=False, **old_bins)[2]
        assert 0.4 < living < 0.5 and 0.1 < old[2] - living < 0.17

    def test_kriek_conroy_curve_follows_dust_index_and_bump(self, sps):
        """dust_type 4: tau = dust2 (k_Calzetti + E_b D) / 4.05 (l/5500)^n, E_b = 0.85 - 1.9 n."""
        base = dict(add_dust_emission=False)
        wave, clean, _ = _spectrum(sps, dust2=0.0, **base)
        for n in (-0.8, 0.0, 0.3):
            _, dusty, _ = _spectrum(sps, dust2=0.6, dust_index=n, **base)
            x = 1e4 / wave   # FSPS attn_curve.f90: Calzetti (2000) k(lambda) = cal / 0.44
            cal = np.where(wave > 6300, 1.17 * (-1.857 + 1.04 * x) + 1.78,
                           1.17 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 1.78)
            drude = (wave * 350.0) ** 2 / ((wave**2 - 2175.0**2) ** 2 + (wave * 350.0) ** 2)
            tau = 0.6 * (np.maximum(cal / 0.44 / 4.05, 0) + (0.85 - 1.9 * n) * drude / 4.05) \
                * (wave / 5500.0) ** n
            sel = (wave > 1200) & (wave < 2e4)
            np.testing.assert_allclose(dusty[sel] / clean[sel], np.exp(-tau[sel]), rtol=1e-3)

    def test_birth_cloud_dust_reddens_only_young_stars(self, sps):
        kw = dict(add_dust_emission=False, dust2=0.3)
        old_only = dict(agebins=np.log10([[1e8, 1e9]]), mass=np.array([1.0]))
        young_only = dict(agebins=np.log10([[1.0, 5e6]]), mass=np.array([1.0]))
        np.testing.assert_allclose(_spectrum(sps, dust1=1.0, **old_only, **kw)[1],
                                   _spectrum(sps, dust1=0.0, **old_only, **kw)[1])
        wave, with_bc, _ = _spectrum(sps, dust1=1.0, dust1_index=-1.0, **young_only, **kw)
        _, without_bc, _ = _spectrum(sps, dust1=0.0, **young_only, **kw)
        v = np.argmin(np.abs(wave - 5500.0))
        assert with_bc[v] / without_bc[v] == pytest.approx(np.exp(-1.0), rel=2e-3)

    def test_dust1_fraction_gives_dust1(self, sps):
        a = _spectrum(sps, dust2=0.5, dust1_fraction=0.8)[1]
        b = _spectrum(sps, dust2=0.5, dust1=0.4)[1]
        np.testing.assert_allclose(a, b)

    def test_dust_emission_conserves_energy(self, sps):
        wave, clean, _ = _spectrum(sps, dust2=0.0)
        _, dusty, _ = _spectrum(sps, dust2=1.0, add_dust_emission=True)
        nu = C_AA / wave
        lbol = -trapezoid(clean, nu)
        assert -trapezoid(dusty, nu) == pytest.approx(lbol, rel=5e-3)

    def test_qpah_beyond_dl07_grid_extrapolates_like_fsps(self, sps):
        """The paper's training range reaches Q_PAH = 7 (DL07 grid: 0.47-4.58)."""
        kw = dict(dust2=1.0, add_dust_emission=True)
        wave, q45, _ = _spectrum(sps, duste_qpah=4.5, **kw)
        _, q7, _ = _spectrum(sps, duste_qpah=7.0, **kw)
        pah = np.argmin(np.abs(wave - 7.7e4))
        assert np.all(np.isfinite(q7)) and np.all(q7 >= 0)
        assert q7[pah] > q45[pah]

    def test_lines_in_spectrum_or_added_by_specmodel_give_same_photometry(self, sps):
        params, _, filters = delayed_tau_galaxy_z2()
        in_spec, _ = prospector_photometry(params, filters, sps)
        params["nebemlineinspec"]["init"] = False
        added, _ = prospector_photometry(params, filters, sps)
        dmag = -2.5 * np.log10(added / in_spec)
        assert np.all(np.abs(dmag) < 0.005), dict(zip(filters, np.round(dmag, 4)))

    def test_nebular_emission_adds_lines(self, sps):
        kw = dict(agebins=np.log10([[1.0, 1e7], [1e7, 1e9]]), mass=np.array([1e7, 1e9]))
        wave, no_neb, _ = _spectrum(sps, **kw)
        _, neb, _ = _spectrum(sps, add_neb_emission=True, gas_logu=-2.0, **kw)
        ewave, elum = sps.get_galaxy_elines()
        halpha = np.argmin(np.abs(ewave - 6562.8))
        assert elum[halpha] > 0 and elum.size == bagpipes_emline_info().size
        near = np.abs(wave - 6563) < 20
        assert neb[near].max() > 2 * no_neb[near].max()

    def test_igm_absorbs_blueward_of_lyman_alpha(self, sps):
        wave, free, _ = _spectrum(sps, zred=3.0)
        _, absorbed, _ = _spectrum(sps, zred=3.0, add_igm_absorption=True)
        red, blue = wave > 1300, (wave > 950) & (wave < 1200)
        np.testing.assert_allclose(absorbed[red], free[red])
        assert np.all(absorbed[blue] < 0.9 * free[blue])
        # beyond Bagpipes' tabulated z <= 10 the Inoue (2014) model is evaluated directly
        _, z12, _ = _spectrum(sps, zred=12.0, add_igm_absorption=True)
        assert np.all(z12[blue] < 1e-3 * free[blue])

    def test_oldest_bin_reaching_t_univ_at_z0(self, sps):
        """Prospector's WMAP9 t_univ(0) = 13.8 Gyr exceeds Bagpipes' own 13.5 Gyr grid edge."""
        agebins = np.log10([[1.0, 1e9], [1e9, prospector_cosmo.age(0).to("yr").value]])
        wave, spec, mfrac = _spectrum(sps, agebins=agebins, mass=np.array([1.0, 1.0]))
        assert np.all(np.isfinite(spec)) and 0.5 < mfrac < 1


# ---------------------------------------------------------------------------
# Parameters it cannot honour
# ---------------------------------------------------------------------------
class TestBadParameters:
    @pytest.mark.parametrize("bad, message", [
        (dict(fagn=0.1), "AGN"),
        (dict(imf_type=1), "Kroupa"),
        (dict(dust_type=2), "dust_type = 2"),
        (dict(add_neb_emission=True, gas_logz=0.3, logzsol=-0.5), "gas_logz"),
        (dict(frac_nodust=0.2), "frac_nodust"),
        (dict(dust_tesc=7.5), "dust_tesc"),
        (dict(add_igm_absorption=True, igm_factor=2.0), "igm_factor"),
        (dict(wgp1=2, cloudy_dust=True), "cloudy_dust"),
        (dict(mass_units="mstar"), "mass_units"),
        (dict(dust2=0.5, dust1=0.3, dust1_fraction=1.0), "dust1_fraction"),
        (dict(sfh=4), "agebins given together with sfh = 4"),
        (dict(mass=np.array([1.0, 2.0])), "'mass' has 2 values"),
    ])
    def test_unsupported_physics_is_a_configuration_error(self, sps, bad, message):
        with pytest.raises(UnsupportedSPSParameterError, match=message) as info:
            _spectrum(sps, **bad)
        # not a ValueError: Prospector's lnprobfn must not turn it into -inf
        assert isinstance(info.value, EmulatorConfigurationError)
        assert not isinstance(info.value, ValueError)

    @pytest.mark.parametrize("bad, message", [
        (dict(logzsol=1.0), "logzsol"),
        (dict(add_neb_emission=True, gas_logu=0.5), "gas_logu"),
        (dict(duste_umin=30.0, dust2=0.1), "duste_umin"),
        (dict(duste_qpah=12.0, dust2=0.1), "duste_qpah"),
        (dict(dust2=-0.1), "optical depths"),
        (dict(agebins=np.log10([[1.0, 1e9], [1e9, 2e10]]), mass=np.ones(2)), "ages up to"),
        (dict(add_igm_absorption=True, zred=25.0), "zred"),
    ])
    def test_values_outside_the_grids_are_value_errors(self, sps, bad, message):
        with pytest.raises(SPSParameterRangeError, match=message) as info:
            _spectrum(sps, **bad)
        assert isinstance(info.value, ValueError)

    def test_parametric_sfh_needs_supported_sfh_and_tage(self, sps):
        for bad, message in ((dict(sfh=5, tage=1.0), "sfh = 5"), (dict(sfh=0, tage=1.0), "sfh = 0"),
                             (dict(tage=1.0), "no sfh")):
            with pytest.raises(UnsupportedSPSParameterError, match=message):
                sps.get_galaxy_spectrum(imf_type=2, **bad)
        with pytest.raises(SPSParameterRangeError, match="tage"):
            sps.get_galaxy_spectrum(imf_type=2, sfh=4, tage=0.0)
        with pytest.raises(UnsupportedSPSParameterError, match="one component"):
            sps.get_galaxy_spectrum(imf_type=2, sfh=4, tage=1.0, mass=np.array([1.0, 2.0]))

    def test_nan_is_a_nonfinite_input_error(self, sps):
        with pytest.raises(NonFiniteInputError, match="logzsol"):
            _spectrum(sps, logzsol=np.nan)

    def test_inert_parameters_are_accepted(self, sps):
        """Parameters that change nothing here are accepted: AGN shape without an AGN,
        Prospector's own parameters, FSPS knobs at their defaults."""
        ref = _spectrum(sps)[1]
        same = _spectrum(sps, fagn=0.0, agn_tau=20.0, add_agn_dust=True, logmass=10.0,
                         logsfr_ratios=np.zeros(2), sigma_smooth=100.0, pmetals=-99,
                         frac_nodust=0.0, add_stellar_remnants=True, lumdist=10.0)[1]
        np.testing.assert_array_equal(same, ref)

    def test_lnprobfn_turns_range_errors_into_minus_inf_and_raises_config_errors(self, sps):
        from prospect.fitting import lnprobfn
        from prospect.utils.obsutils import fix_obs
        params, _, filters = tau_galaxy_z03()
        params["logzsol"].update(isfree=True, prior=_uniform(-5.0, 5.0))
        model = BagpipesSpecModel(params)
        obs = fix_obs({"filters": load_filters(filters[1:6]), "maggies": np.ones(5) * 1e-9,
                       "maggies_unc": np.ones(5) * 1e-10, "wavelength": None, "spectrum": None})
        assert np.isfinite(lnprobfn(np.array([0.0]), model=model, obs=obs, sps=sps))
        assert lnprobfn(np.array([1.5]), model=model, obs=obs, sps=sps) == -np.inf
        model.params["fagn"] = np.array([0.5])
        with pytest.raises(UnsupportedSPSParameterError):
            lnprobfn(np.array([0.0]), model=model, obs=obs, sps=sps)


def _uniform(lo, hi):
    from prospect.models import priors
    return priors.TopHat(mini=lo, maxi=hi)


# ---------------------------------------------------------------------------
# Prospector integration without SPS_HOME, pickling, factories, FSPS
# ---------------------------------------------------------------------------
class TestProspectorIntegration:
    def test_continuity_transforms_feed_the_step_sfh(self, sps):
        """Prospector's continuity template: logmass + logsfr_ratios -> mass per bin."""
        params = TemplateLibrary["continuity_sfh"]
        params["zred"]["init"] = 0.5
        model = BagpipesSpecModel(params)
        obs = {"filters": load_filters(["sdss_r0"]), "wavelength": None, "spectrum": None}
        theta = model.theta.copy()
        _, phot1, _ = model.predict(theta, obs=obs, sps=sps)
        theta[model.theta_index["logmass"]] += 1.0
        _, phot2, _ = model.predict(theta, obs=obs, sps=sps)
        assert phot2[0] / phot1[0] == pytest.approx(10.0, rel=1e-9)
        # log10(SFR_i / SFR_i+1) = 2, i = 1 the youngest: more young stars, brighter
        theta[model.theta_index["logsfr_ratios"]] = [2.0, 2.0]
        _, phot3, _ = model.predict(theta, obs=obs, sps=sps)
        assert phot3[0] > phot2[0]

    def test_stock_specmodel_needs_sps_home_but_ours_does_not(self, sps):
        from prospect.models import SpecModel
        params, _, _ = tau_galaxy_z03()
        with pytest.raises(TypeError):
            SpecModel(params)
        model = make_spec_model(params, sps)
        assert isinstance(model, BagpipesSpecModel)
        names = model.emline_info["name"]
        assert len(names) == sps.get_galaxy_elines()[0].size and "H  1  6562.80A" in names
        assert list(sps.emline_info["name"]) == list(names)

    def test_a_source_without_a_line_table_gets_its_lines_by_wavelength(self, sps):
        """Any SPS source works without SPS_HOME, e.g. one that has no ``emline_info``."""

        class NoLineNames:
            def get_galaxy_spectrum(self, **params):
                return sps.get_galaxy_spectrum(**params)

            def get_galaxy_elines(self):
                return sps.get_galaxy_elines()

        params, _, filters = tau_galaxy_z03()
        model = make_spec_model(params, NoLineNames())
        assert not isinstance(model, BagpipesSpecModel) and len(model.emline_info) == 0
        obs = {"filters": load_filters(filters), "wavelength": None, "spectrum": None}
        _, phot, mfrac = model.predict(model.theta, obs=obs, sps=NoLineNames())
        expected_phot, expected_mfrac = prospector_photometry(params, filters, sps)
        np.testing.assert_array_equal(phot, expected_phot)
        assert mfrac == expected_mfrac
        np.testing.assert_array_equal(model.emline_info["wave"], sps.emline_info["wave"])
        assert model.emline_info["name"][0] == f"line_{sps.emline_info['wave'][0]:.2f}"

    def test_photometry_only_models_skip_smoothing_with_the_same_photometry(self, sps):
        params, _, filters = tau_galaxy_z03()
        obs = {"filters": load_filters(filters), "wavelength": None, "spectrum": None}
        fast = make_spec_model(params, sps, skip_unused_smoothing=True)
        slow = make_spec_model(params, sps)
        fast_spec, fast_phot, _ = fast.predict(fast.theta, obs=obs, sps=sps)
        slow_spec, slow_phot, _ = slow.predict(slow.theta, obs=obs, sps=sps)
        np.testing.assert_array_equal(fast_phot, slow_phot)
        np.testing.assert_array_equal(fast_spec, fast._norm_spec)   # left unsmoothed
        assert not np.array_equal(slow_spec, slow._norm_spec)
        # asked for a spectrum, it smooths as Prospector does
        obs_spec = dict(obs, wavelength=fast._outwave.copy())
        np.testing.assert_array_equal(fast.predict(fast.theta, obs=obs_spec, sps=sps)[0],
                                      slow.predict(slow.theta, obs=obs_spec, sps=sps)[0])

    def test_pickles_for_worker_processes(self, sps, tmp_path):
        params = dict(agebins=np.log10([[1.0, 1e8], [1e8, 1e9]]), mass=np.array([1.0, 2.0]),
                      add_neb_emission=True, dust2=0.3, imf_type=2)
        path = tmp_path / "sps.pkl"
        path.write_bytes(pickle.dumps(sps))
        _, expected, mfrac = sps.get_galaxy_spectrum(**params)
        # a fresh interpreter rebuilds it from the pickle alone, without importing bagpipes
        code = ("import pickle, sys, numpy as np\n"
                f"sps = pickle.load(open({str(path)!r}, 'rb'))\n"
                "w, s, m = sps.get_galaxy_spectrum(agebins=np.log10([[1.0, 1e8], [1e8, 1e9]]),"
                " mass=np.array([1.0, 2.0]), add_neb_emission=True, dust2=0.3, imf_type=2)\n"
                "assert 'bagpipes' not in sys.modules\n"
                f"np.save({str(tmp_path / 'out.npy')!r}, np.append(s, m))\n")
        env = {k: v for k, v in os.environ.items() if k != "SPS_HOME"}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
        out = np.load(tmp_path / "out.npy")
        np.testing.assert_array_equal(out[:-1], expected)
        assert out[-1] == mfrac

    def test_make_sps_builds_bagpipes_and_rejects_unknown_names(self):
        with pytest.raises(EmulatorConfigurationError, match="fsps-step"):
            make_sps("fspss")
        with pytest.raises(EmulatorConfigurationError, match="resolution"):
            make_sps("bagpipes", resolution=-1)

    @pytest.mark.parametrize("name", ["fsps-step", "fsps-parametric"])
    def test_fsps_without_sps_home_is_a_clear_error(self, name):
        with pytest.raises(FSPSUnavailableError, match="SPS_HOME"):
            make_sps(name)


@pytest.fixture
def real_sps_home(monkeypatch):
    """Restore the user's SPS_HOME (the autouse fixture removed it) or skip."""
    monkeypatch.undo()
    reason = fsps_unavailable_reason()
    if reason is not None:
        pytest.skip(f"FSPS cannot run here: {reason}")


class TestFSPSSources:
    """The same machinery with Prospector's FSPS sources (skipped without FSPS)."""

    def test_fsps_step_basis_serves_the_continuity_galaxy(self, real_sps_home):
        params, _, filters = continuity_galaxy_z1()
        phot, mfrac = prospector_photometry(params, filters, make_sps("fsps-step"))
        bagpipes_phot, bagpipes_mfrac = prospector_photometry(params, filters, BagpipesBasis())
        assert np.all(np.isfinite(phot)) and np.all(phot > 0)
        # different stellar libraries and isochrones: the same galaxy within a few tenths
        # of a magnitude in the optical and near-infrared
        optical_nir = [filters.index(n) for n in ("sdss_g0", "sdss_r0", "sdss_i0", "sdss_z0",
                                                  "twomass_J", "twomass_H", "twomass_Ks")]
        assert np.all(np.abs(2.5 * np.log10(phot / bagpipes_phot)[optical_nir]) < 0.5)
        assert mfrac == pytest.approx(bagpipes_mfrac, abs=0.1)

    def test_fsps_parametric_basis_serves_the_delayed_tau_galaxy(self, real_sps_home):
        params, _, filters = delayed_tau_galaxy_z2()
        phot, mfrac = prospector_photometry(params, filters, make_sps("fsps-parametric"))
        assert np.all(np.isfinite(phot)) and 0.3 < mfrac < 1
