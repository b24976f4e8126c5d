"""Figures of a fit: corner plot and SED with residuals (matplotlib, Agg).

:func:`corner_columns` gathers the free parameters and the derived stellar
mass, SFR (100 Myr) and mass-weighted age of equal-weight posterior draws,
with units in their labels; :func:`sed_plot` draws the photometry with the
likelihood's total sigma (observational, emulator and floor), the masked
bands as hollow markers, and residuals in units of that sigma.
"""
import numpy as np

__all__ = ["corner_plot", "sed_plot", "corner_columns", "parameter_label", "DERIVED_LABELS"]

#: Derived quantities of the corner plot: name -> label with its unit.
DERIVED_LABELS = {
    "logmstar": r"$\log_{10} M_*$ [M$_\odot$]",
    "logmass_formed": r"$\log_{10} M_{\rm formed}$ [M$_\odot$]",
    "logsfr_100myr": r"$\log_{10}$ SFR$_{100\,\rm Myr}$ [M$_\odot$ yr$^{-1}$]",
    "mwa_gyr": r"$t_{\rm mw}$ (mass-weighted age) [Gyr]",
}


def _agg():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def parameter_label(model, label):
    """``"name [unit]"`` of a free parameter (a ``theta_labels`` entry), the
    unit from the model's parameter specification (``units``)."""
    base = label
    if base not in model.config_dict:  # a vector component name_k
        base = label.rsplit("_", 1)[0]
    unit = str(model.config_dict.get(base, {}).get("units", "") or "").strip()
    return f"{label} [{unit}]" if unit else label


def corner_columns(model, samples, weights, n=2000, seed=0, sps=None, truths=None):
    """Equal-weight draws of the free parameters and derived quantities.

    Parameters
    ----------
    model : EmulatedSpecModel
    samples : ndarray, shape (n_samples, ndim)
    weights : ndarray, shape (n_samples,)
    n : int
        Number of equal-weight draws.
    truths : dict, optional
        True values by name (theta labels and :data:`DERIVED_LABELS` keys);
        missing names get no truth line.

    Returns
    -------
    names : list of str
        Theta labels, then the derived quantities present (a step SFH gives
        ``logmstar`` -- or ``logmass_formed`` when the emulator has no mfrac --,
        ``logsfr_100myr`` (Msun/yr, log10) and ``mwa_gyr``).
    labels : list of str
        Axis labels with units.
    draws : ndarray, shape (n, len(names))
    truth_values : list of float or None
    """
    from .derived import sfh_summary
    from .run import posterior_samples
    draws = posterior_samples(samples, weights, n=n, seed=seed)
    names = list(model.theta_labels())
    labels = [parameter_label(model, name) for name in names]
    columns = [draws[:, j] for j in range(draws.shape[1])]
    derived = []
    for theta in draws:
        _, _, mfrac = model.predict(theta, obs={"filters": None, "wavelength": None,
                                                "spectrum": None}, sps=sps)
        derived.append(sfh_summary(model.params, mfrac))
    if derived[0] is not None:
        mass_key = "logmstar" if np.isfinite([d["logmstar"] for d in derived]).any() \
            else "logmass_formed"
        for key in (mass_key, "logsfr_100myr", "mwa_gyr"):
            values = np.array([d[key] for d in derived], dtype=float)
            if np.isfinite(values).sum() < 2:
                continue
            # corner needs finite values: no SFR in 100 Myr -> the lowest finite one
            floor = np.nanmin(np.where(np.isfinite(values), values, np.nan))
            columns.append(np.where(np.isfinite(values), values, floor))
            names.append(key)
            labels.append(DERIVED_LABELS[key])
    truths = truths or {}
    truth_values = [None if truths.get(name) is None else float(truths[name]) for name in names]
    return names, labels, np.column_stack(columns), truth_values


def corner_plot(draws, labels, path, truths=None):
    """Corner plot of equal-weight posterior draws (n, k) saved to ``path``.

    ``truths``: one value per column, ``None`` for no truth line.
    """
    plt = _agg()
    import corner
    if truths is not None and all(t is None for t in truths):
        truths = None
    fig = corner.corner(np.asarray(draws), labels=labels, truths=truths,
                        quantiles=[0.16, 0.5, 0.84], show_titles=True, title_fmt=".2f",
                        label_kwargs={"fontsize": 9}, title_kwargs={"fontsize": 8})
    fig.savefig(path, dpi=90)
    plt.close(fig)


def sed_plot(obs, model_maggies, path, title="", total_sigma=None, best_maggies=None):
    """Observed photometry, the posterior model, and residuals in units of sigma.

    Parameters
    ----------
    obs : dict
        Prospector obs (``filters``, ``maggies``, ``maggies_unc``,
        ``phot_mask``; ``maggies_input``/``maggies_unc_input`` of
        :func:`~prospect_emulator.fitting.run.make_obs` show the masked
        bands' values).
    model_maggies : ndarray, shape (n_draws, n_filters)
        Model photometry of posterior draws (maggies).
    path : str
        Output image.
    total_sigma : ndarray, shape (n_filters,), optional
        The likelihood's total 1-sigma per band (maggies; observational,
        emulator and floor; NaN for masked bands), e.g. from the fit's quality
        record.  Default: the observational uncertainty.
    best_maggies : ndarray, shape (n_filters,), optional
        Best-fit (highest ln-posterior) photometry; residuals are measured
        from it (default: the posterior median).
    """
    plt = _agg()
    filters = obs["filters"]
    names = [str(getattr(f, "name", f)) for f in filters]
    wave = np.array([f.wave_effective for f in filters]) / 1e4  # micron
    mask = np.asarray(obs["phot_mask"], dtype=bool)
    observed = np.asarray(obs.get("maggies_input", obs["maggies"]), dtype=float)
    unc = np.asarray(obs["maggies_unc"], dtype=float)
    sigma = unc.copy() if total_sigma is None else np.asarray(total_sigma, dtype=float)
    lo, med, hi = np.percentile(np.atleast_2d(model_maggies), [16, 50, 84], axis=0)
    best = med if best_maggies is None else np.asarray(best_maggies, dtype=float)
    order = np.argsort(wave)
    fig, (ax, axr) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5),
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    ax.fill_between(wave[order], lo[order], hi[order], color="C1", alpha=0.35,
                    label="model 16-84%")
    ax.plot(wave[order], best[order], "s", color="C1", mfc="none", ms=6,
            label="best fit" if best_maggies is not None else "model median")
    ax.errorbar(wave[mask], observed[mask], sigma[mask], fmt="o", color="k", ms=4, capsize=0,
                label=r"observed $\pm$ total $\sigma$ (obs. + emulator + floor)"
                if total_sigma is not None else r"observed $\pm\sigma_{\rm obs}$")
    shown = ~mask & np.isfinite(observed) & (observed > 0)
    if shown.any():
        ax.plot(wave[shown], observed[shown], "o", mfc="none", mec="0.4", ms=6,
                label="masked (not fitted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("flux density (maggies)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title)
    top = ax.secondary_xaxis("top")
    top.set_xlabel(r"observed wavelength ($\mu$m)")

    with np.errstate(divide="ignore", invalid="ignore"):
        chi = (observed - best) / sigma
    axr.axhline(0, color="0.5", lw=1)
    for k in (-1, 1):
        axr.axhline(k, color="0.8", lw=0.8, ls="--")
    axr.plot(wave[mask], chi[mask], "o", color="k", ms=4)
    axr.set_ylabel(r"(obs $-$ best) / $\sigma_{\rm tot}$" if total_sigma is not None
                   else r"(obs $-$ model) / $\sigma_{\rm obs}$", fontsize=8)
    # filter names on the bottom axis, one tick per band
    axr.set_xticks(wave)
    axr.set_xticks([], minor=True)
    axr.set_xticklabels(names, rotation=90, fontsize=5)
    for tick, used in zip(axr.get_xticklabels(), mask):
        if not used:
            tick.set_color("0.55")
    ax.tick_params(axis="x", which="both", labelbottom=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
