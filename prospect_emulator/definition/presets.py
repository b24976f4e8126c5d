"""Training-set configurations: emulator inputs, their distributions, and the
Prospector model that turns them into SEDs.

Two presets ship with the package:

``paper18``
    The 18-parameter physical model of the paper (Sec. 2.1, Table 1): the
    Prospector-alpha model with a 7-bin continuity SFH, Kriek & Conroy dust
    with a birth-cloud component, free Draine & Li dust emission, nebular
    emission with a free gas-phase metallicity, an AGN torus, IGM
    absorption and redshift.  Meant for FSPS (``prospect.sources.FastStepBasis``).
``default``
    ``paper18`` without ``log_fagn``, ``log_agn_tau`` and ``gas_logz`` (the gas
    metallicity follows the stellar one): 15 inputs, runnable on
    :class:`prospect_emulator.sources.BagpipesBasis`.

The inputs of the emulator are exactly the names in
:attr:`TrainingSetConfig.param_names`; a vector Prospector parameter ``p`` of
length k appears as ``p_1 ... p_k`` (``logsfr_ratios_1 .. logsfr_ratios_6``).
Each preset defines the Prospector ``model_params`` (built from
:class:`prospect.models.templates.TemplateLibrary`) with ``depends_on``
transforms from the inputs to the SPS parameters:

=================  =====================================================
SPS parameter      computed from the inputs
=================  =====================================================
``agebins``        ``zred`` (Prospector-alpha: 0-30 Myr, 30-100 Myr, log-spaced
                   bins, last bin 0.85-1.0 t_univ(z); ``zred_to_agebins``)
``mass`` (7 bins)  ``logmass`` (log10 Msun formed) + ``logsfr_ratios``
                   (``logsfr_ratios_to_masses``)
``dust1``          ``dust1_fraction * dust2``
``duste_gamma``    ``10**log_duste_gamma``
``fagn``           ``10**log_fagn`` (paper18)
``agn_tau``        ``10**log_agn_tau`` (paper18)
``gas_logz``       ``logzsol`` (default) or free (paper18)
=================  =====================================================

Configurations can be changed from Python (:meth:`TrainingSetConfig.with_changes`)
or from a TOML file (:func:`load_config`)::

    preset = "default"        # the base, optional (default: "default")
    sps = "bagpipes"          # optional: "bagpipes" or "fsps"

    [distributions]           # training distributions, by input name
    zred = {kind = "uniform", low = 0.5, high = 1.5}
    logsfr_ratios = {kind = "truncated_student_t", loc = 0.0, scale = 3.0, df = 2, low = -5.0, high = 5.0}

    [fixed]                   # fixed model values; an input fixed here stops being an input
    gas_logu = -2.5

The models are built with :func:`prospect_emulator.sources.make_spec_model`,
which works around Prospector 1.4's ``SpecModel.__init__`` crashing with a
TypeError when ``SPS_HOME`` is unset.
"""
import copy
import difflib
import json
import math
import os
import zlib

import numpy as np

from ..errors import EmulatorConfigurationError
from ..transforms import (dust1_fraction_to_dust1, gas_logz_follows_stars,
                          log_agn_tau_to_agn_tau, log_duste_gamma_to_duste_gamma,
                          log_fagn_to_fagn, logmass_to_mass, logsfr_ratios_to_masses,
                          logtage_to_tage, logtau_to_tau, logzred_to_zred, zred_to_agebins)
from .distributions import (TruncatedNormal, TruncatedStudentT, Uniform,
                            distribution_from_dict)

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["TrainingSetConfig", "get_preset", "load_config", "available_presets",
           "PAPER_TRAINING_DISTRIBUTIONS", "PAPER_PRIOR_DISTRIBUTIONS", "INPUT_PARAMETERS",
           "N_SFH_BINS", "continuity_agebins",
           "expand_param_names", "SPS_KINDS"]

#: Number of continuity-SFH bins (Prospector-alpha, paper Sec. 2.1).
N_SFH_BINS = 7
#: log10(age/yr) edges kept fixed by ``zred_to_agebins``: 0-30 Myr and 30-100 Myr.
_FIXED_YOUNG_EDGES = (0.0, math.log10(3e7), 8.0)

#: SPS sources ``generate`` knows how to build.
SPS_KINDS = ("bagpipes", "fsps")

#: Every parameter that can be an emulator input, with its vector length,
#: unit and meaning.  Vector inputs appear as ``name_1 .. name_N``.
INPUT_PARAMETERS = {
    "logmass": (1, "log10 Msun", "total stellar mass formed"),
    "logzsol": (1, "dex", "stellar metallicity log10(Z*/Zsun)"),
    "logsfr_ratios": (N_SFH_BINS - 1, "dex",
                      "log10(SFR_i / SFR_i+1) of adjacent SFH bins, i=1 the youngest"),
    "dust2": (1, "optical depth", "diffuse dust V-band optical depth tau_2"),
    "dust_index": (1, "", "power-law modifier n of the Calzetti (2000) attenuation curve"),
    "dust1_fraction": (1, "", "ratio tau_1/tau_2 of birth-cloud to diffuse dust"),
    "log_fagn": (1, "dex", "log10 of AGN to bolometric luminosity ratio"),
    "log_agn_tau": (1, "dex", "log10 of the AGN torus optical depth"),
    "gas_logz": (1, "dex", "gas-phase metallicity log10(Zgas/Zsun)"),
    "zred": (1, "", "redshift"),
    "duste_qpah": (1, "per cent", "PAH mass fraction Q_PAH"),
    "duste_umin": (1, "", "minimum radiation field U_min of dust emission"),
    "log_duste_gamma": (1, "dex", "log10 of the dust mass fraction exposed to U > U_min"),
    # parametric (delayed-tau) SFH: the emulator sees the logarithms, the
    # Prospector model keeps FSPS's tage, tau and zred (EmulatedSpecModel
    # reads ``logX`` as log10 of a model's ``X``)
    "logtage": (1, "log10 Gyr", "log10 of the age of the population (start of star formation)"),
    "logtau": (1, "log10 Gyr", "log10 of the e-folding time of the delayed-tau SFH"),
    "logzred": (1, "", "log10 of the redshift"),
}

#: SFH families a preset can be built on (Prospector templates).
SFH_FAMILIES = ("continuity", "parametric")

_LOG5, _LOG150, _LOG3 = math.log10(5.0), math.log10(150.0), math.log10(3.0)


def _paper_training_distributions():
    """Table 1, "Train/Test" column: thick tails (Sec. 4.2)."""
    sfr = dict(loc=0.0, scale=3.0, df=2.0, low=-5.0, high=5.0)
    return {
        "logmass": Uniform(6.0, 12.5, name="logmass"),
        "logzsol": Uniform(-1.98, 0.19, name="logzsol"),
        **{f"logsfr_ratios_{i}": TruncatedStudentT(name=f"logsfr_ratios_{i}", **sfr)
           for i in range(1, N_SFH_BINS)},
        "dust2": TruncatedNormal(0.3, 3.0, 0.0, 4.0, name="dust2"),
        "dust_index": Uniform(-1.2, 0.4, name="dust_index"),
        "dust1_fraction": TruncatedNormal(1.0, 1.0, 0.0, 2.0, name="dust1_fraction"),
        "log_fagn": Uniform(-5.0, _LOG3, name="log_fagn"),
        "log_agn_tau": Uniform(_LOG5, _LOG150, name="log_agn_tau"),
        "gas_logz": Uniform(-2.0, 0.5, name="gas_logz"),
        "zred": Uniform(0.5, 3.0, name="zred"),
        "duste_qpah": TruncatedNormal(2.0, 4.0, 0.0, 7.0, name="duste_qpah"),
        "duste_umin": TruncatedNormal(1.0, 20.0, 0.1, 25.0, name="duste_umin"),
        "log_duste_gamma": TruncatedNormal(-2.0, 2.0, -4.0, 0.0, name="log_duste_gamma"),
    }


def _parametric_training_distributions():
    """Training distributions of the ``parametric`` preset: the ranges of
    Prospector's ``parametric_sfh`` template priors, widened where the grids
    allow (mass 1e6-10^12.5 Msun, logzsol -2.3..0.4, tage 1 Myr-13.8 Gyr, tau
    0.05-30 Gyr, dust2 0-2.5) and 0.003 < z <= 3, uniform in the logarithms of
    mass, age, tau and z; dust2
    from a half Student-t (scale 0.8, 2 degrees of freedom) truncated at 2.5."""
    return {
        "logmass": Uniform(6.0, 12.5, name="logmass"),
        # wider than the template's priors (logzsol -2..0.19, tau >= 0.1 Gyr), so
        # that the prior's edges are not the network's (errors grow at the edges)
        "logzsol": Uniform(-2.3, 0.4, name="logzsol"),
        "logtage": Uniform(-3.0, math.log10(13.8), name="logtage"),
        "logtau": Uniform(-1.3, math.log10(30.0), name="logtau"),
        # dense near dust2 = 0, where the dust emission (energy balance) makes the
        # mid-infrared magnitudes change fastest
        "dust2": TruncatedStudentT(loc=0.0, scale=0.8, df=2.0, low=0.0, high=2.5, name="dust2"),
        "logzred": Uniform(-2.5, math.log10(3.0), name="logzred"),
    }


def _paper_prior_distributions():
    """Table 1, "Prior" column (thin tails), for comparison and mock catalogues.

    The paper's metallicity prior follows the Gallazzi et al. (2005)
    mass-metallicity relation; here it is the uniform marginal over its
    bounds.  The prior fixes redshift per object; its Uniform(0.5, 3) is the
    one the paper used for its mock catalogue.
    """
    dists = _paper_training_distributions()
    sfr = dict(loc=0.0, scale=0.3, df=2.0, low=-5.0, high=5.0)
    dists.update({f"logsfr_ratios_{i}": TruncatedStudentT(name=f"logsfr_ratios_{i}", **sfr)
                  for i in range(1, N_SFH_BINS)})
    dists.update(
        dust2=TruncatedNormal(0.3, 1.0, 0.0, 4.0, name="dust2"),
        dust1_fraction=TruncatedNormal(1.0, 0.3, 0.0, 2.0, name="dust1_fraction"),
        duste_qpah=TruncatedNormal(2.0, 2.0, 0.0, 7.0, name="duste_qpah"),
        duste_umin=TruncatedNormal(1.0, 10.0, 0.1, 25.0, name="duste_umin"),
        log_duste_gamma=TruncatedNormal(-2.0, 1.0, -4.0, 0.0, name="log_duste_gamma"))
    return dists


#: Table 1 "Train/Test" distributions by (expanded) input name.
PAPER_TRAINING_DISTRIBUTIONS = _paper_training_distributions()
#: Table 1 "Prior" distributions by (expanded) input name (see the note on logzsol).
PAPER_PRIOR_DISTRIBUTIONS = _paper_prior_distributions()

_PAPER18_INPUTS = ("logmass", "logzsol", "logsfr_ratios", "dust2", "dust_index",
                   "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred",
                   "duste_qpah", "duste_umin", "log_duste_gamma")
_PRESETS = {
    "paper18": dict(
        inputs=_PAPER18_INPUTS, sps="fsps",
        # Prospector-alpha (Leja et al. 2019): Chabrier IMF, fixed ionisation parameter
        fixed={"imf_type": 1, "gas_logu": -2.0},
        description="the paper's 18-parameter Prospector-alpha model (FSPS)"),
    "default": dict(
        inputs=tuple(p for p in _PAPER18_INPUTS if p not in ("log_fagn", "log_agn_tau", "gas_logz")),
        sps="bagpipes",
        # Bagpipes' BC03 grids use a Kroupa (2001) IMF (FSPS imf_type 2)
        fixed={"imf_type": 2, "gas_logu": -2.0},
        description="paper18 without AGN and separate gas metallicity (15 inputs; BagpipesBasis)"),
    "parametric": dict(
        inputs=("logmass", "logzsol", "logtage", "logtau", "dust2", "logzred"), sps="bagpipes",
        sfh_family="parametric", distributions=_parametric_training_distributions(),
        # Prospector's parametric_sfh template: delayed tau (sfh 4), Kroupa IMF,
        # power-law dust (dust_type 0); FSPS defaults for everything else
        # (dust emission on, no nebular emission, no IGM absorption)
        fixed={},
        description="Prospector's parametric_sfh template: delayed-tau SFH, 6 inputs (BagpipesBasis)"),
}


def available_presets():
    """Names of the shipped presets."""
    return list(_PRESETS)


# ---------------------------------------------------------------------------
# depends_on transforms (module level so that models can be rebuilt anywhere)
# ---------------------------------------------------------------------------
def continuity_agebins(zred, nbins=N_SFH_BINS):
    """SFH bin edges ``(nbins, 2)`` in log10(yr) at redshift ``zred``."""
    template = np.zeros((nbins, 2))
    template[0] = _FIXED_YOUNG_EDGES[:2]
    template[1] = _FIXED_YOUNG_EDGES[1:]
    return zred_to_agebins(zred=zred, agebins=template)


#: derived SPS parameter -> (transform, inputs it needs, description), per SFH family
_DERIVED_PARAMETRIC = {
    "mass": (logmass_to_mass, ("logmass",), "10**logmass (Msun formed)"),
    "tage": (logtage_to_tage, ("logtage",), "10**logtage (Gyr)"),
    "tau": (logtau_to_tau, ("logtau",), "10**logtau (Gyr)"),
    "zred": (logzred_to_zred, ("logzred",), "10**logzred"),
}
_DERIVED = {
    "agebins": (zred_to_agebins, ("zred",), "Prospector-alpha bins from zred"),
    "mass": (logsfr_ratios_to_masses, ("logmass", "logsfr_ratios"),
             "Msun formed per bin from logmass and logsfr_ratios"),
    "dust1": (dust1_fraction_to_dust1, ("dust1_fraction", "dust2"), "dust1_fraction * dust2"),
    "duste_gamma": (log_duste_gamma_to_duste_gamma, ("log_duste_gamma",), "10**log_duste_gamma"),
    "fagn": (log_fagn_to_fagn, ("log_fagn",), "10**log_fagn"),
    "agn_tau": (log_agn_tau_to_agn_tau, ("log_agn_tau",), "10**log_agn_tau"),
}


def expand_param_names(inputs):
    """Emulator input names of ``[(name, size), ...]``: ``p`` or ``p_1 .. p_k``."""
    names = []
    for name, size in inputs:
        names.extend([name] if size == 1 else [f"{name}_{i}" for i in range(1, size + 1)])
    return names


def _base_name(name):
    """``logsfr_ratios_3`` -> ``logsfr_ratios``; other names unchanged."""
    head, _, tail = name.rpartition("_")
    if tail.isdigit() and INPUT_PARAMETERS.get(head, (1,))[0] > 1:
        return head
    return name


def _closest(name, candidates):
    close = difflib.get_close_matches(name, list(candidates), n=4, cutoff=0.5)
    return f" (closest: {', '.join(close)})" if close else ""


def _derived_for(sfh_family):
    return _DERIVED_PARAMETRIC if sfh_family == "parametric" else _DERIVED


def _parametric_template_params():
    """Prospector's ``parametric_sfh`` template, every parameter fixed, plus
    the logarithmic inputs of the ``parametric`` preset."""
    from prospect.models.templates import TemplateLibrary
    params = copy.deepcopy(TemplateLibrary["parametric_sfh"])
    for p in params.values():
        p["isfree"] = False
        p.pop("prior", None)
    params["logmass"] = {"N": 1, "isfree": False, "init": 10.0, "units": "log10 Msun formed"}
    params["logtage"] = {"N": 1, "isfree": False, "init": 0.0, "units": "log10 Gyr"}
    params["logtau"] = {"N": 1, "isfree": False, "init": 0.0, "units": "log10 Gyr"}
    params["logzred"] = {"N": 1, "isfree": False, "init": -1.0, "units": "log10 redshift"}
    return params


def _template_params(include_agn, sfh_family="continuity"):
    """Fixed and structural parameters of the Prospector model, from TemplateLibrary."""
    if sfh_family == "parametric":
        return _parametric_template_params()
    from prospect.models.templates import TemplateLibrary
    params = {}
    for part in ("continuity_sfh", "dust_emission", "nebular", "igm"):
        params.update(TemplateLibrary[part])
    if include_agn:
        params.update(TemplateLibrary["agn"])
    for p in params.values():
        p["isfree"] = False
    params["dust_type"]["init"] = 4          # Kriek & Conroy (2013): Calzetti * power law
    params["dust1"] = {"N": 1, "isfree": False, "init": 0.0, "units": "optical depth"}
    params["dust_index"] = {"N": 1, "isfree": False, "init": 0.0, "units": ""}
    params["dust1_fraction"] = {"N": 1, "isfree": False, "init": 1.0, "units": ""}
    params["log_duste_gamma"] = {"N": 1, "isfree": False, "init": -2.0, "units": "dex"}
    if include_agn:
        params["log_fagn"] = {"N": 1, "isfree": False, "init": -4.0, "units": "dex"}
        params["log_agn_tau"] = {"N": 1, "isfree": False, "init": math.log10(20.0), "units": "dex"}
    nb = N_SFH_BINS
    params["logsfr_ratios"].update(N=nb - 1, init=np.zeros(nb - 1))
    params["logsfr_ratios"].pop("prior", None)
    params["mass"].update(N=nb, init=np.full(nb, 1e6))
    params["agebins"].update(N=nb, init=continuity_agebins(1.0))
    for p in params.values():
        p.pop("prior", None)
    return params


class TrainingSetConfig:
    """What a training set contains: inputs, their distributions, the model.

    Parameters
    ----------
    name : str
        Preset name (recorded in the training-set file).
    inputs : sequence of str
        Base names of the input parameters, in emulator order (see
        :data:`INPUT_PARAMETERS`; other non-derived model parameters such as
        ``gas_logu`` are allowed too).
    distributions : mapping
        Training distribution per expanded input name (``logsfr_ratios_3``) or
        per vector name (``logsfr_ratios``, applied to every component);
        :class:`~prospect_emulator.definition.distributions.Distribution`
        objects or mappings for :func:`distribution_from_dict`.
    fixed : mapping, optional
        Fixed values of model parameters (``gas_logu``, ``imf_type``, ...).
    sps : {"bagpipes", "fsps"}
        SPS source the model is meant for.
    description : str, optional

    Raises
    ------
    EmulatorConfigurationError
        Unknown parameter names, missing or impossible distributions,
        a redshift range the SFH bins cannot follow.
    """

    def __init__(self, name, inputs, distributions, fixed=None, sps="bagpipes", description="",
                 sfh_family="continuity"):
        self.name = str(name)
        self.description = str(description)
        if sps not in SPS_KINDS:
            raise EmulatorConfigurationError(
                f"unknown SPS source {sps!r}; allowed: {', '.join(SPS_KINDS)}")
        if sfh_family not in SFH_FAMILIES:
            raise EmulatorConfigurationError(
                f"unknown SFH family {sfh_family!r}; allowed: {', '.join(SFH_FAMILIES)}")
        self.sps = sps
        self.sfh_family = sfh_family
        fixed = dict(fixed or {})
        include_agn = any(p in ("log_fagn", "log_agn_tau") for p in list(inputs) + list(fixed))
        self._template = _template_params(include_agn, sfh_family)
        self._derived = {p: spec for p, spec in _derived_for(sfh_family).items()
                         if p in self._template
                         and any(n in list(inputs) + list(fixed) for n in spec[1])}
        allowed = self._allowed_parameters()

        # inputs: known names, no duplicates, not derived, not also fixed
        base_inputs = []
        for p in inputs:
            if p not in allowed:
                raise EmulatorConfigurationError(
                    f"unknown input parameter {p!r}{_closest(p, allowed)}; allowed: "
                    + ", ".join(allowed))
            if p in base_inputs:
                raise EmulatorConfigurationError(f"input parameter {p!r} is listed twice")
            if p in fixed:
                raise EmulatorConfigurationError(
                    f"{p!r} is both an input and fixed (= {fixed[p]!r}); choose one")
            base_inputs.append(p)
        for p, value in fixed.items():
            if p not in allowed and p not in self._template:
                raise EmulatorConfigurationError(
                    f"unknown fixed parameter {p!r}{_closest(p, list(allowed) + list(self._template))}"
                    "; allowed: " + ", ".join(sorted(set(allowed) | set(self._template))))
            if p in self._derived:
                raise EmulatorConfigurationError(
                    f"{p!r} is computed from the inputs ({self._derived[p][2]}) and cannot be fixed")
        self.fixed = {p: _plain(v) for p, v in fixed.items()}
        self.inputs = [(p, self._size(p)) for p in base_inputs]
        self.param_names = expand_param_names(self.inputs)

        # distributions: expand vector names, then every input needs exactly one
        expanded = {}
        vector_names = {p: size for p, size in self.inputs if size > 1}
        for key, spec in dict(distributions).items():
            if key in vector_names:
                for i in range(1, vector_names[key] + 1):
                    expanded.setdefault(f"{key}_{i}", (key, spec))
            else:
                expanded[key] = (key, spec)
        unknown = [k for k, (key, _) in expanded.items() if k not in self.param_names]
        unknown_keys = sorted({expanded[k][0] for k in unknown} - set(self.fixed))
        if unknown_keys:
            bad = unknown_keys[0]
            raise EmulatorConfigurationError(
                f"distribution given for unknown parameter {bad!r}"
                f"{_closest(bad, self.param_names + list(vector_names))}; the inputs are: "
                + ", ".join(self.param_names))
        missing = [p for p in self.param_names if p not in expanded]
        if missing:
            raise EmulatorConfigurationError(
                "no training distribution for input(s) " + ", ".join(missing))
        self.distributions = {}
        for p in self.param_names:
            dist = distribution_from_dict(expanded[p][1], name=p)
            if dist.name != p:   # a Distribution object built under another name
                dist = distribution_from_dict(dist.to_dict(), name=p)
            self.distributions[p] = dist
        self._check_physical_bounds()

    # --- construction helpers -------------------------------------------------
    def _allowed_parameters(self):
        structural = {"sfh", "imf_type", "dust_type", "add_dust_emission", "add_neb_emission",
                      "add_neb_continuum", "nebemlineinspec", "add_igm_absorption",
                      "add_agn_dust", "mass", "agebins", "dust1", "duste_gamma", "fagn",
                      "agn_tau", "logsfr_ratios", "logmass"}
        structural |= set(self._derived)
        extra = [p for p in self._template if p not in structural and p not in INPUT_PARAMETERS]
        own = [p for p in INPUT_PARAMETERS if p in self._template or p in _FAMILY_FREE_INPUTS]
        return own + extra

    def _size(self, p):
        if p in INPUT_PARAMETERS:
            return INPUT_PARAMETERS[p][0]
        return int(self._template[p].get("N", 1))

    def _check_physical_bounds(self):
        """Bounds the model cannot follow are configuration errors, not failed models."""
        from prospect.sources.constants import cosmo
        limits = {"dust2": (0.0, None), "dust1_fraction": (0.0, None), "duste_umin": (0.0, None),
                  "duste_qpah": (0.0, None), "zred": (0.0, None)}
        for p, (lo, hi) in limits.items():
            if p in self.distributions and self.distributions[p].low < lo:
                raise EmulatorConfigurationError(
                    f"{p}: lower bound {self.distributions[p].low} is unphysical; it must be >= {lo}")
        if self.sfh_family != "continuity":
            return
        zmax = (self.distributions["zred"].high if "zred" in self.distributions
                else float(np.atleast_1d(self.fixed.get("zred", 0.0))[0]))
        # the log-spaced bins start at 100 Myr and end at 0.85 t_univ(z)
        tbinmax = 0.85 * cosmo.age(zmax).to("yr").value
        if not math.log10(tbinmax) > _FIXED_YOUNG_EDGES[2] + 0.05:
            raise EmulatorConfigurationError(
                f"zred: upper bound {zmax} is too high for the {N_SFH_BINS}-bin continuity SFH "
                "(0.85 t_univ(z) must exceed ~110 Myr, i.e. z below ~17)")

    # --- public API -----------------------------------------------------------
    @property
    def n_params(self):
        """Number of emulator inputs."""
        return len(self.param_names)

    @property
    def param_ranges(self):
        """``(n_params, 2)`` array of the training bounds ``[low, high]``."""
        return np.array([self.distributions[p].bounds for p in self.param_names])

    def with_changes(self, distributions=None, fixed=None, sps=None, zred_range=None, name=None):
        """A new configuration with some distributions/fixed values replaced.

        Parameters
        ----------
        distributions : mapping, optional
            Replacement distributions by input name (vector names allowed).
        fixed : mapping, optional
            Additional fixed values (fixing an input removes it from the inputs).
        sps : str, optional
        zred_range : (float, float), optional
            Shortcut for a uniform redshift distribution on ``[zmin, zmax]``.
        name : str, optional
        """
        dists = dict(self.distributions)
        vector_names = {p: size for p, size in self.inputs if size > 1}
        for key, spec in dict(distributions or {}).items():
            if key in vector_names:
                for i in range(1, vector_names[key] + 1):
                    dists[f"{key}_{i}"] = spec
            else:
                dists[key] = spec
        if zred_range is not None:
            zmin, zmax = zred_range
            dists["zred"] = {"kind": "uniform", "low": zmin, "high": zmax}
        fixed = dict(fixed or {})
        both = sorted(set(fixed) & {_base_name(k) for k in dict(distributions or {})})
        if both:
            raise EmulatorConfigurationError(
                f"{', '.join(both)}: given both a fixed value and a distribution; choose one")
        # a distribution for a parameter the base configuration fixes makes it an input
        new_fixed = {k: v for k, v in self.fixed.items() if k not in dict(distributions or {})}
        new_fixed.update(fixed)
        # inputs with a distribution but not yet inputs are appended (e.g. gas_logu)
        base_of = {n: p for p, size in self.inputs for n in expand_param_names([(p, size)])}
        inputs = [p for p, _ in self.inputs if p not in new_fixed]
        for key in dists:
            base = base_of.get(key, key)
            if base not in inputs and base not in new_fixed:
                inputs.append(base)
        dists = {k: v for k, v in dists.items() if base_of.get(k, k) not in new_fixed}
        if zred_range is not None and "logzred" in inputs:
            raise EmulatorConfigurationError(
                "this configuration's redshift input is logzred: give its distribution "
                "(e.g. {'logzred': {'kind': 'uniform', 'low': -2, 'high': 0.477}}) instead of "
                "zred_range")
        return TrainingSetConfig(name or self.name, inputs, dists, fixed=new_fixed,
                                 sps=sps or self.sps, description=self.description,
                                 sfh_family=self.sfh_family)

    def sample(self, n_samples, seed):
        """Draw the training parameters.

        Each input gets its own random stream, ``SeedSequence(seed)`` spawned
        with a key made of the parameter name, so a column depends only on the
        seed, the name and its distribution -- not on chunking, workers or the
        other inputs -- and the first m rows of a draw of n > m samples equal a
        draw of m samples.

        Parameters
        ----------
        n_samples : int
        seed : int

        Returns
        -------
        ndarray of shape (n_samples, n_params)
            Parameter values, columns in the order of :attr:`param_names`.
        """
        n_samples, seed = int(n_samples), int(seed)
        out = np.empty((n_samples, self.n_params))
        for j, p in enumerate(self.param_names):
            key = zlib.crc32(p.encode())
            stream = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
            out[:, j] = self.distributions[p].sample(stream, n_samples)
        return out

    def build_model_params(self):
        """Prospector ``model_params`` with the inputs as free parameters.

        Free parameters come first in the order of :attr:`param_names` (so a
        row of :meth:`sample` is directly a ``theta`` vector), with top-hat
        priors on the training bounds; then fixed parameters; then the
        ``depends_on`` parameters in the order their transforms need.

        Returns
        -------
        dict
        """
        template = copy.deepcopy(self._template)
        derived_needed = dict(self._derived)
        input_names = [p for p, _ in self.inputs]
        if "gas_logz" in template:
            if "gas_logz" in input_names or "gas_logz" in self.fixed:
                template["gas_logz"].pop("depends_on", None)
            else:
                template["gas_logz"]["depends_on"] = gas_logz_follows_stars

        from prospect.models import priors
        model_params = {}
        for p, size in self.inputs:
            names = expand_param_names([(p, size)])
            lows = np.array([self.distributions[n].low for n in names])
            highs = np.array([self.distributions[n].high for n in names])
            entry = dict(template.get(p, {}))
            entry.pop("depends_on", None)
            units = INPUT_PARAMETERS.get(p, (None, entry.get("units", "")))[1]
            centre = 0.5 * (lows + highs)
            entry.update(N=size, isfree=True, units=units,
                         init=float(centre[0]) if size == 1 else centre,
                         prior=priors.TopHat(mini=lows[0] if size == 1 else lows,
                                             maxi=highs[0] if size == 1 else highs))
            model_params[p] = entry
        for p, entry in template.items():
            if p in model_params or p in derived_needed or "depends_on" in entry:
                continue
            entry = dict(entry)
            if p in self.fixed:
                value = self.fixed[p]
                entry["init"] = value
                entry["N"] = int(np.size(value))
            model_params[p] = entry
        # dependency order: agebins before mass; gas_logz after logzsol (already placed)
        for p, (func, _, _) in derived_needed.items():
            entry = dict(template.get(p, {"N": 1, "isfree": False, "init": 0.0}))
            entry.update(isfree=False, depends_on=func)
            model_params[p] = entry
        if "depends_on" in template.get("gas_logz", {}):
            model_params["gas_logz"] = dict(template["gas_logz"])
        return model_params

    def build_model(self, sps=None):
        """The Prospector :class:`SpecModel` that computes this training set's SEDs.

        Built by :func:`prospect_emulator.sources.make_spec_model` for ``sps``
        (the SPS source it will be used with, optional): it works without
        ``SPS_HOME`` and skips the smoothing of the unused spectrum (the
        photometry is the same to the last bit).  Its ``theta_labels()`` equal
        :attr:`param_names`.
        """
        from ..sources.fsps_sources import make_spec_model
        model = make_spec_model(self.build_model_params(), sps, skip_unused_smoothing=True)
        labels = list(model.theta_labels())
        if labels != self.param_names:  # pragma: no cover - guards the ordering above
            raise EmulatorConfigurationError(
                f"internal error: model parameters {labels} differ from inputs {self.param_names}")
        return model

    def to_dict(self):
        """JSON-able description (preset name, inputs, distributions, fixed values, SPS)."""
        out = {"name": self.name, "inputs": [p for p, _ in self.inputs], "sps": self.sps,
               "distributions": {p: d.to_dict() for p, d in self.distributions.items()},
               "fixed": self.fixed, "description": self.description}
        if self.sfh_family != "continuity":  # older files have no key: continuity
            out["sfh_family"] = self.sfh_family
        return out

    def distributions_json(self):
        """The training distributions as a JSON string (training-set attribute)."""
        return json.dumps({p: d.to_dict() for p, d in self.distributions.items()})

    def fixed_params_json(self):
        """Fixed model values and derived-parameter rules as JSON (training-set attribute)."""
        model_params = self.build_model_params()
        fixed = {}
        for p, entry in model_params.items():
            if entry.get("isfree"):
                continue
            if "depends_on" in entry:
                fixed[p] = "depends_on " + getattr(entry["depends_on"], "__name__", "?")
            else:
                fixed[p] = _plain(entry.get("init"))
        return json.dumps(fixed)

    def to_toml(self):
        """TOML text that :func:`load_config` reads back to an equal configuration."""
        lines = [f"preset = {json.dumps(self.name)}", f"sps = {json.dumps(self.sps)}",
                 "inputs = [" + ", ".join(json.dumps(p) for p, _ in self.inputs) + "]", "",
                 "[distributions]"]
        for p, d in self.distributions.items():
            fields = ", ".join(f"{k} = {_toml_value(v)}" for k, v in d.to_dict().items())
            lines.append(f"{p} = {{{fields}}}")
        lines += ["", "[fixed]"]
        for p, v in self.fixed.items():
            lines.append(f"{p} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"

    def __eq__(self, other):
        return isinstance(other, TrainingSetConfig) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (f"TrainingSetConfig(name={self.name!r}, sps={self.sps!r}, "
                f"param_names={self.param_names!r})")

    def describe(self):
        """Human-readable table of inputs and distributions."""
        rows = [f"preset {self.name!r} ({self.description}); SPS: {self.sps}"]
        for p in self.param_names:
            rows.append(f"  {p:18s} {self.distributions[p]!r}")
        if self.fixed:
            rows.append("  fixed: " + ", ".join(f"{k}={v}" for k, v in self.fixed.items()))
        return "\n".join(rows)


def _plain(value):
    """JSON/TOML-friendly version of a parameter value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise EmulatorConfigurationError(f"cannot write {value!r} to TOML")


def get_preset(name="default", zred_range=None, sps=None):
    """A shipped configuration.

    Parameters
    ----------
    name : {"default", "paper18"}
    zred_range : (float, float), optional
        Replace the redshift distribution by Uniform(zmin, zmax)
        (default: Table 1's Uniform(0.5, 3)).
    sps : {"bagpipes", "fsps"}, optional
        Override the preset's SPS source.

    Returns
    -------
    TrainingSetConfig
    """
    if name not in _PRESETS:
        raise EmulatorConfigurationError(
            f"unknown preset {name!r}{_closest(str(name), _PRESETS)}; available: "
            + ", ".join(_PRESETS))
    spec = _PRESETS[name]
    names = expand_param_names([(p, INPUT_PARAMETERS[p][0]) for p in spec["inputs"]])
    dists = spec.get("distributions", PAPER_TRAINING_DISTRIBUTIONS)
    config = TrainingSetConfig(name, spec["inputs"], {p: dists[p] for p in names},
                               fixed=spec["fixed"], sps=spec["sps"],
                               description=spec["description"],
                               sfh_family=spec.get("sfh_family", "continuity"))
    if zred_range is not None or sps is not None:
        config = config.with_changes(zred_range=zred_range, sps=sps)
    return config


_CONFIG_KEYS = ("preset", "sps", "inputs", "distributions", "fixed", "name")

#: Inputs a family's template lacks but the family adds (continuity: the
#: Prospector-alpha parameters of INPUT_PARAMETERS).
_FAMILY_FREE_INPUTS = ("logmass", "logzsol", "logsfr_ratios", "dust2", "dust_index",
                       "dust1_fraction", "log_fagn", "log_agn_tau", "gas_logz", "zred",
                       "duste_qpah", "duste_umin", "log_duste_gamma")


def load_config(source, preset=None, zred_range=None, sps=None):
    """Configuration from a TOML file (or an equivalent mapping).

    Parameters
    ----------
    source : str, os.PathLike or mapping
        TOML path, or the parsed mapping.  Keys: ``preset`` (base preset,
        default "default"), ``sps``, ``inputs`` (optional list replacing the
        base preset's inputs, in order), ``[distributions]``, ``[fixed]``.
    preset : str, optional
        Base preset when the file names none.
    zred_range : (float, float), optional
        Uniform redshift range applied last (command-line ``--zred-min/--zred-max``).
    sps : str, optional
        SPS source override applied last.

    Returns
    -------
    TrainingSetConfig
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise EmulatorConfigurationError(f"configuration file {source} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise EmulatorConfigurationError(f"{source}: not valid TOML: {err}") from None
    else:
        data = dict(source)
    unknown = [k for k in data if k not in _CONFIG_KEYS]
    if unknown:
        raise EmulatorConfigurationError(
            f"unknown configuration key(s) {', '.join(map(repr, unknown))}; allowed: "
            + ", ".join(_CONFIG_KEYS))
    base = get_preset(data.get("preset", preset or "default"))
    distributions = dict(data.get("distributions", {}))
    fixed = dict(data.get("fixed", {}))
    if "inputs" in data:
        inputs = list(data["inputs"])
        dists = {}
        for p in inputs:
            size = INPUT_PARAMETERS.get(p, (1,))[0]
            for n in expand_param_names([(p, size)]):
                if n in base.distributions:
                    dists[n] = base.distributions[n]
        dists.update(distributions)
        merged_fixed = {k: v for k, v in base.fixed.items() if k not in inputs}
        merged_fixed.update(fixed)
        config = TrainingSetConfig(data.get("name", base.name), inputs, dists, fixed=merged_fixed,
                                   sps=data.get("sps", base.sps), description=base.description,
                                   sfh_family=base.sfh_family)
    else:
        config = base.with_changes(distributions=distributions, fixed=fixed,
                                   sps=data.get("sps"), name=data.get("name"))
    if zred_range is not None or sps is not None:
        config = config.with_changes(zred_range=zred_range, sps=sps)
    return config
