"""Figures of a fit: corner plot and SED with residuals (matplotlib, Agg)."""
import numpy as np

__all__ = ["corner_plot", "sed_plot"]


def corner_plot(draws, labels, path, truths=None):
    """Corner plot of equal-weight posterior draws (n, k) saved to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import corner
    fig = corner.corner(np.asarray(draws), labels=labels, truths=truths,
                        quantiles=[0.16, 0.5, 0.84], show_titles=True, title_fmt=".2f")
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt
    plt.close(fig)


def sed_plot(obs, model_maggies, path, title=""):
    """Observed photometry with the posterior model band and chi residuals.

    Parameters
    ----------
    obs : dict
        Prospector obs (``filters``, ``maggies``, ``maggies_unc``, ``phot_mask``).
    model_maggies : ndarray, shape (n_draws, n_filters)
        Model photometry of posterior draws (maggies).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    wave = np.array([f.wave_effective for f in obs["filters"]]) / 1e4  # micron
    mask = obs["phot_mask"]
    lo, med, hi = np.percentile(model_maggies, [16, 50, 84], axis=0)
    order = np.argsort(wave)
    fig, (ax, axr) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5),
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.fill_between(wave[order], lo[order], hi[order], color="C1", alpha=0.4, label="model 16-84%")
    ax.plot(wave[order], med[order], "s", color="C1", mfc="none", label="model median")
    ax.errorbar(wave[mask], obs["maggies"][mask], obs["maggies_unc"][mask], fmt="o", color="k",
                ms=4, label="observed")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("flux density (maggies)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    chi = (obs["maggies"] - med) / obs["maggies_unc"]
    axr.axhline(0, color="0.5", lw=1)
    axr.plot(wave[mask], chi[mask], "o", color="k", ms=4)
    axr.set_ylabel(r"$\chi$")
    axr.set_xlabel(r"observed wavelength ($\mu$m)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
