"""How good is a fit: best-fit chi^2 with the likelihood's own sigma, bands used, flags.

:func:`fit_quality` evaluates Prospector's ``lnprobfn`` once at the best-fit
(highest ln-posterior) sample, so the chi^2 uses exactly the total sigma of the
likelihood: the observational uncertainty, the emulator's error and the noise
floor (paper eq. 9, :class:`~prospect_emulator.EmulatorNoiseModel`).

Flags (rules chosen here, all recorded in :data:`FLAG_RULES`):

``prior_dominated``
    Free parameters whose posterior 5-95% range is wider than
    :data:`PRIOR_DOMINATED_FRACTION` (0.8) of the prior's 5-95% range: the
    data say little about them, the prior sets the answer.
``at_prior_edge``
    Free parameters whose posterior median lies within
    :data:`PRIOR_EDGE_FRACTION` (2%) of the prior's full range from one of its
    edges: the data may want a value the prior forbids.
``few_bands``
    Fewer bands used than free parameters + 1: the fit has no degree of
    freedom left, the chi^2 cannot test the model.
``suspect_units``
    The median observed / best-fit model flux ratio over the bands used is
    beyond 10**1.5 either way: the best the model can do misses the data by
    more than 1.5 dex, which points to wrong flux units or distance.
"""
import numpy as np

__all__ = ["fit_quality", "mask_reasons", "weighted_quantiles", "prior_quantiles",
           "best_fit_index", "FLAG_NAMES", "FLAG_RULES", "MASK_REASONS",
           "PRIOR_DOMINATED_FRACTION", "PRIOR_EDGE_FRACTION", "SUSPECT_UNITS_DEX"]

#: Posterior 5-95% range / prior 5-95% range above which a parameter is prior-dominated.
PRIOR_DOMINATED_FRACTION = 0.8
#: Distance of the posterior median from a prior edge, as a fraction of the prior range.
PRIOR_EDGE_FRACTION = 0.02
#: |log10(median observed / model flux)| above which the flux units are suspect (dex).
SUSPECT_UNITS_DEX = 1.5
#: The flags of :func:`fit_quality`, in the order of the summary table.
FLAG_NAMES = ("prior_dominated", "at_prior_edge", "few_bands", "suspect_units")
#: One-line rule of each flag (also the summary table's column descriptions).
FLAG_RULES = {
    "prior_dominated": f"some posterior 5-95% range > {PRIOR_DOMINATED_FRACTION} of the prior's "
                       "5-95% range",
    "at_prior_edge": f"some posterior median within {PRIOR_EDGE_FRACTION:.0%} of the prior range "
                     "from a prior edge",
    "few_bands": "fewer bands used than free parameters + 1 (no degree of freedom)",
    "suspect_units": f"median observed/best-fit flux ratio beyond 10**{SUSPECT_UNITS_DEX} either "
                     "way (flux units or distance)",
}
#: Why a band is left out of the likelihood.
MASK_REASONS = ("non-finite flux", "non-positive uncertainty", "user mask")


def mask_reasons(maggies, maggies_unc, phot_mask=None):
    """Why each band is masked (``""`` for a band that is used).

    Parameters
    ----------
    maggies, maggies_unc : array_like, shape (n_bands,)
        Flux densities and 1-sigma uncertainties (maggies).
    phot_mask : array_like of bool, optional
        The user's mask (True = use the band).

    Returns
    -------
    list of str
        One of :data:`MASK_REASONS` or ``""`` per band; the first reason that
        applies, in that order.
    """
    maggies = np.asarray(maggies, dtype=float)
    unc = np.asarray(maggies_unc, dtype=float)
    user = np.ones(len(maggies), bool) if phot_mask is None else np.asarray(phot_mask, bool)
    reasons = []
    for f, e, keep in zip(maggies, unc, user):
        if not np.isfinite(f):
            reasons.append(MASK_REASONS[0])
        elif not (np.isfinite(e) and e > 0):
            reasons.append(MASK_REASONS[1])
        elif not keep:
            reasons.append(MASK_REASONS[2])
        else:
            reasons.append("")
    return reasons


def weighted_quantiles(samples, weights, quantiles):
    """Quantiles of weighted samples, per column.

    Parameters
    ----------
    samples : ndarray, shape (n, ndim)
    weights : ndarray, shape (n,)
        Non-negative; normalised here.
    quantiles : sequence of float in [0, 1]

    Returns
    -------
    ndarray, shape (len(quantiles), ndim)
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    weights = np.asarray(weights, dtype=float)
    weights = weights / weights.sum()
    out = np.empty((len(quantiles), samples.shape[1]))
    for j in range(samples.shape[1]):
        order = np.argsort(samples[:, j])
        cdf = np.cumsum(weights[order])
        cdf -= 0.5 * weights[order]  # mid-point of each sample's probability mass
        out[:, j] = np.interp(quantiles, cdf, samples[order, j])
    return out


def prior_quantiles(model, quantiles):
    """Quantiles of every free parameter's prior, through the model's prior transform.

    ``quantiles`` 0 and 1 give the prior's range (infinite for an unbounded prior).

    Returns
    -------
    ndarray, shape (len(quantiles), ndim)
    """
    with np.errstate(all="ignore"):
        return np.array([model.prior_transform(np.full(model.ndim, float(q))) for q in quantiles])


def best_fit_index(lnprobability):
    """Index of the highest ln-posterior sample (Prospector's ``best_sample``)."""
    return int(np.nanargmax(np.asarray(lnprobability, dtype=float)))


def _lnprobability(model, obs, noise, samples, sps):
    from prospect.fitting import lnprobfn
    return np.array([lnprobfn(t, model=model, obs=obs, sps=sps, noise=(None, noise))
                     for t in samples])


def _filter_names(obs):
    from ..prospector.model import filter_names_of
    return list(filter_names_of(obs["filters"]))


def fit_quality(model, obs, noise, samples, weights, lnprobability=None, sps=None):
    """Quality record of one fit.

    Parameters
    ----------
    model : EmulatedSpecModel (or any Prospector model)
    obs : dict
        The Prospector obs that was fitted (``maggies``, ``maggies_unc``,
        ``phot_mask``, ``filters``; optionally ``phot_mask_reason`` from
        :func:`~prospect_emulator.fitting.run.make_obs`).
    noise : EmulatorNoiseModel or None
        The photometric noise model of the fit (``None``: the observational
        uncertainties alone, Prospector's plain chi^2).
    samples : ndarray, shape (n, ndim)
        Posterior samples (dynesty's weighted samples).
    weights : ndarray, shape (n,)
        Their weights.
    lnprobability : ndarray, shape (n,), optional
        ln-posterior of each sample (computed with ``lnprobfn`` if absent).
    sps : optional
        SPS source of a model that needs one (``None`` for an emulator).

    Returns
    -------
    dict
        ``chi2`` and ``chi2_per_band`` (chi^2 / number of bands used) at the
        best fit with the likelihood's total sigma; ``n_bands``, ``n_masked``,
        ``n_free``; ``bands_used`` (names), ``bands_masked`` (name -> reason,
        one of :data:`MASK_REASONS`); ``total_sigma`` (name -> total 1-sigma
        of each used band, maggies: observational, emulator and floor);
        ``median_flux_ratio`` (observed / best-fit model over the bands used);
        ``bestfit`` (``theta``, ``theta_labels``, ``lnprobability``,
        ``maggies`` of every band, ``mfrac``); ``flags`` (``prior_dominated``
        and ``at_prior_edge``: lists of parameter labels; ``few_bands`` and
        ``suspect_units``: bool); ``flag_rules`` (:data:`FLAG_RULES`).

    Raises
    ------
    EmulatorConfigurationError
        The best sample has a non-finite ln-posterior (nothing was fitted).
    """
    from ..errors import EmulatorConfigurationError
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    weights = np.asarray(weights, dtype=float)
    if lnprobability is None:
        lnprobability = _lnprobability(model, obs, noise, samples, sps)
    ibest = best_fit_index(lnprobability)
    theta = samples[ibest].copy()

    # best-fit photometry, then one likelihood call so the noise model holds its Sigma
    _, phot, mfrac = model.predict(theta, obs=obs, sps=sps)
    lnp = _lnprobability(model, obs, noise, theta[None, :], sps)[0]
    if not np.isfinite(lnp):
        raise EmulatorConfigurationError(
            f"the best sample has ln-posterior {lnp}: there is no fit to assess")
    maggies = np.asarray(obs["maggies"], dtype=float)
    unc = np.asarray(obs["maggies_unc"], dtype=float)
    mask = np.asarray(obs.get("phot_mask", np.isfinite(maggies)), dtype=bool)
    residual = (maggies - phot)[mask]
    if noise is None:
        variance = unc[mask] ** 2
        chi2 = float(np.sum(residual ** 2 / variance))
    elif np.ndim(noise.Sigma) == 1:
        variance = np.asarray(noise.Sigma, dtype=float)
        chi2 = float(np.sum(residual ** 2 / variance))
    else:
        from scipy.linalg import cho_solve
        variance = np.diagonal(noise.Sigma).astype(float)
        chi2 = float(residual @ cho_solve(noise.factorized_Sigma, residual))

    names = _filter_names(obs)
    reasons = obs.get("phot_mask_reason") or mask_reasons(maggies, unc, mask)
    used = [n for n, m in zip(names, mask) if m]
    masked = {n: (r or MASK_REASONS[2]) for n, m, r in zip(names, mask, reasons) if not m}
    n_bands = len(used)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.median(maggies[mask] / phot[mask])) if n_bands else np.nan

    # prior-dominated and prior-edge parameters: quantiles of posterior and prior
    labels = list(model.theta_labels())
    post = weighted_quantiles(samples, weights, [0.05, 0.5, 0.95])
    prior = prior_quantiles(model, [0.0, 0.05, 0.95, 1.0])
    post_width = post[2] - post[0]
    prior_width = prior[2] - prior[1]
    prior_range = prior[3] - prior[0]
    dominated = [lab for lab, pw, qw in zip(labels, post_width, prior_width)
                 if np.isfinite(qw) and qw > 0 and pw > PRIOR_DOMINATED_FRACTION * qw]
    edge = []
    for j, lab in enumerate(labels):
        if np.isfinite(prior_range[j]) and prior_range[j] > 0:
            distance = min(post[1, j] - prior[0, j], prior[3, j] - post[1, j])
            if distance < PRIOR_EDGE_FRACTION * prior_range[j]:
                edge.append(lab)
    suspect = not (np.isfinite(ratio) and ratio > 0
                   and abs(np.log10(ratio)) <= SUSPECT_UNITS_DEX)
    return {
        "chi2": chi2,
        "chi2_per_band": chi2 / n_bands if n_bands else float("nan"),
        "n_bands": n_bands,
        "n_masked": len(masked),
        "n_free": int(model.ndim),
        "bands_used": used,
        "bands_masked": masked,
        "total_sigma": {n: float(s) for n, s in zip(used, np.sqrt(variance))},
        "median_flux_ratio": ratio,
        "bestfit": {"theta": theta.tolist(), "theta_labels": labels,
                    "lnprobability": float(lnprobability[ibest]),
                    "maggies": np.atleast_1d(phot).astype(float).tolist(),
                    "mfrac": float(mfrac)},
        "flags": {"prior_dominated": dominated, "at_prior_edge": edge,
                  "few_bands": n_bands < model.ndim + 1, "suspect_units": bool(suspect)},
        "flag_rules": dict(FLAG_RULES),
    }
