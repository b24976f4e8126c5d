"""Every parameter of a Prospector model checked against the emulator's physics.

An emulator reproduces one SPS model: the one its training set was computed
with (its model definition).  A Prospector parameter file may set any FSPS or
``SpecModel`` parameter; each one is treated in exactly one of these ways
(:data:`PARAMETER_TREATMENTS`, the table in ``docs/replace_fsps.md``):

``input``
    An emulator input, read by name; an input ``logX`` is read as log10 of the
    model's ``X`` when the model has no ``logX`` (``mass``, ``tage``, ``tau``,
    ``zred`` of the parametric emulator).
``applied``
    ``lumdist`` (Mpc): fluxes are scaled by (d_L(zred) / lumdist)^2, as
    Prospector's ``SpecModel.flux_norm`` does.
``physics``
    Any FSPS parameter (fixed, or computed by ``depends_on``): its value must
    equal the one the emulator was trained with -- the training model's value
    at the same inputs, or FSPS's default where a model does not set it.  A
    difference is an error that names the parameter, both values and the fix.
``spectrum only``
    ``SpecModel`` parameters that change only a modelled spectrum (smoothing,
    calibration polynomial, emission-line marginalisation): a photometric
    emulator does not use them, nor does Prospector's photometry.
``likelihood``
    Parameters read by Prospector's likelihood (``f_outlier_phot``,
    ``nsigma_outlier_phot``), honoured there.
``refused``
    Parameters that would change the photometry in a way the emulator cannot
    follow (``elines_to_ignore`` with lines listed, ``mass_units`` other than
    ``"mformed"``).
``not an SPS parameter``
    Anything else (a user's own parameter read only by ``depends_on``
    functions): FSPS never sees it, so neither does the emulator.
"""
import numpy as np

from ..errors import EmulatorConfigurationError

__all__ = ["FSPS_DEFAULTS", "PARAMETER_TREATMENTS", "SPECTRUM_ONLY_PARAMETERS",
           "check_model_physics", "parameter_treatment"]


def _fsps_defaults():
    """python-fsps 0.4/0.5 defaults of the parameters that change an SED."""
    from ..sources.bagpipes_basis import HONOURED_PARAMETERS, INERT_AT_DEFAULT
    defaults = {k: v for k, v in HONOURED_PARAMETERS.items() if v is not None}
    defaults.update(INERT_AT_DEFAULT)
    defaults.update(sfh=0, tage=0.0, tau=1.0, zred=0.0, mass=1.0, agn_tau=10.0,
                    add_agn_dust=True, tburst=11.0, fburst=0.0, sigma_smooth=0.0,
                    dust_ratio=None, dust1_fraction=None)
    return {k: v for k, v in defaults.items() if v is not None}


#: FSPS's default of each parameter that changes a photometric SED.
FSPS_DEFAULTS = _fsps_defaults()

#: SpecModel parameters that act on a modelled spectrum only.
SPECTRUM_ONLY_PARAMETERS = frozenset("""
sigma_smooth smoothtype fftsmooth lsf min_wave_smooth max_wave_smooth smooth_velocity
polyorder poly_regularization spec_norm poly_coeffs spec_jitter unc_factor
f_outlier_spec nsigma_outlier_spec marginalize_elines use_eline_prior eline_prior_width
eline_sigma elines_to_fit eline_delta_zred fit_eline_redshift
""".split())
#: Parameters Prospector's likelihood reads.
LIKELIHOOD_PARAMETERS = frozenset(["f_outlier_phot", "nsigma_outlier_phot"])

#: Treatment name -> what it means (the documented table's rows).
PARAMETER_TREATMENTS = {
    "input": "an emulator input (by name, or log10 of the model's parameter for a logX input)",
    "applied": "applied exactly: fluxes scale as (d_L(zred)/lumdist)^2",
    "physics": "must equal the emulator's training value (or FSPS's default); checked",
    "spectrum only": "changes only a modelled spectrum; no effect on photometry",
    "likelihood": "read by Prospector's likelihood (outlier model)",
    "refused": "refused unless at its default (elines_to_ignore empty, mass_units 'mformed'): "
               "it would change the photometry in a way the emulator cannot follow",
    "not an SPS parameter": "not passed to the SPS (read only by depends_on functions)",
}

# parameters whose value only matters when a switch is on
_ONLY_WITH = {
    "add_neb_emission": ("gas_logu", "gas_logz", "add_neb_continuum", "nebemlineinspec"),
    "add_dust_emission": ("duste_gamma", "duste_umin", "duste_qpah"),
}
_TOL = dict(rtol=1e-6, atol=1e-9)


def _fsps_parameter_names():
    from ..sources.bagpipes_basis import FSPS_PARAMETERS
    return FSPS_PARAMETERS | {"mass", "agebins", "lumdist", "mass_units", "elines_to_ignore"}


def parameter_treatment(name, input_sources=()):
    """How a Prospector parameter is treated (a key of :data:`PARAMETER_TREATMENTS`)."""
    if name in input_sources:
        return "input"
    if name == "lumdist":
        return "applied"
    if name in ("mass_units", "elines_to_ignore"):
        return "refused"
    if name in SPECTRUM_ONLY_PARAMETERS:
        return "spectrum only"
    if name in LIKELIHOOD_PARAMETERS:
        return "likelihood"
    if name in _fsps_parameter_names():
        return "physics"
    return "not an SPS parameter"


def _same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 1 and b.size == 1:
        return bool(np.isclose(a.ravel()[0], b.ravel()[0], **_TOL))
    return a.shape == b.shape and bool(np.allclose(a, b, **_TOL))


def _show(value):
    if value is None:
        return "not set"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    v = np.asarray(value)
    if v.dtype.kind in "fiub" and v.size == 1:
        return f"{v.ravel()[0]:g}"
    if v.dtype.kind in "fiub" and v.size > 1:
        return np.array2string(np.round(v.astype(float), 4), separator=", ",
                               max_line_width=200)
    return repr(value)


def _training_params(definition, x, param_names):
    """SPS parameters of the definition's training model at emulator inputs ``x``."""
    from prospect.models import ProspectorParams
    model = ProspectorParams(definition.build_model_params())
    theta = np.empty(model.ndim)
    labels = list(model.theta_labels())
    for j, name in enumerate(param_names):
        if name in labels:
            theta[labels.index(name)] = x[j]
    model.set_parameters(theta)
    return model.params


def _refusals(params):
    problems = []
    units = params.get("mass_units")
    if units is not None and str(np.ravel(np.asarray(units, dtype=object))[0]) != "mformed":
        problems.append(f"mass_units = {_show(units)}: the emulator predicts the light of the "
                        "stellar mass *formed*; use mass_units = 'mformed' (Prospector's default)")
    lines = params.get("elines_to_ignore")
    if lines is not None and np.size(lines) and any(str(v) for v in np.ravel(lines)):
        problems.append(f"elines_to_ignore = {_show(lines)}: the emulated photometry contains "
                        "every nebular line of the training model; remove elines_to_ignore or "
                        "train an emulator without those lines")
    return problems


def check_model_physics(model_params, definition, x, param_names, inputs_read):
    """Compare a model's parameters with the emulator's training physics.

    Parameters
    ----------
    model_params : dict
        The model's ``params`` after ``set_parameters`` (values).
    definition : TrainingSetConfig
        The emulator's model definition.
    x : ndarray
        The emulator inputs at those parameters.
    param_names : list of str
        The emulator's input names.
    inputs_read : set of str
        Model parameters that feed emulator inputs.

    Returns
    -------
    list of str
        One line per problem (empty: the model is the emulator's).
    """
    trained = _training_params(definition, x, param_names)
    problems = _refusals(model_params)
    fsps_names = _fsps_parameter_names()
    skip = (set(inputs_read) | set(param_names) | SPECTRUM_ONLY_PARAMETERS
            | {"lumdist", "mass_units", "elines_to_ignore"})
    names = sorted((set(model_params) | set(trained)) & fsps_names - skip)
    computed = {p for p, spec in definition.build_model_params().items() if "depends_on" in spec}

    def value(params, name):
        return params[name] if name in params else FSPS_DEFAULTS.get(name)

    switched_off = set()
    for switch, dependents in _ONLY_WITH.items():
        if not _truthy(value(model_params, switch)) and not _truthy(value(trained, switch)):
            switched_off.update(dependents)
    for name in names:
        if name in switched_off:
            continue
        mine, theirs = value(model_params, name), value(trained, name)
        if mine is None and theirs is None:
            continue
        if mine is None or theirs is None or not _same(mine, theirs):
            if isinstance(FSPS_DEFAULTS.get(name), bool):  # a switch: say True/False
                mine = None if mine is None else _truthy(mine)
                theirs = None if theirs is None else _truthy(theirs)
            origin = "set" if name in model_params else "FSPS default"
            t_origin = ("computed from the inputs" if name in computed else
                        "trained" if name in trained else "FSPS default")
            problems.append(
                f"{name} = {_show(mine)} ({origin}) but the emulator was trained with "
                f"{name} = {_show(theirs)} ({t_origin})")
    return problems


def _truthy(value):
    if value is None:
        return False
    return bool(np.ravel(np.asarray(value, dtype=float))[0])


def raise_physics_problems(problems, definition, emulator_label):
    """Raise one :class:`EmulatorConfigurationError` listing every problem."""
    if not problems:
        return
    raise EmulatorConfigurationError(
        f"the model differs from the physics the emulator {emulator_label} was trained with "
        f"(model definition {definition.name!r}: {definition.description}):\n  - "
        + "\n  - ".join(problems)
        + "\nSet these parameters to the emulator's values (EmulatedSpecModel.from_emulator("
          "emulator) builds the model it was trained for), or use an emulator trained with "
          "your physics (prospect-emulator generate --config/train). The table of every "
          "parameter's treatment is in docs/replace_fsps.md.")
