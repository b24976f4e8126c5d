"""Test-set precision of an emulator (paper Sec. 3.1, Fig. 5, 6 and 10).

Residuals are emulator minus truth, in arsinh magnitudes (eq. 2), per
filter.  Per filter we report the bias (mean), the precision (standard
deviation), the median and the residual quantiles at the Gaussian
probabilities of -4..+4 sigma (the columns of
:data:`~prospect_emulator.runtime.emulator.RESIDUAL_STAT_COLUMNS`), and the
residual covariance/correlation between filters.

NumPy and matplotlib only: evaluating an emulator needs no TensorFlow.
"""
import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr

from ..errors import EmulatorConfigurationError
from ..runtime.emulator import RESIDUAL_STAT_COLUMNS
from ..runtime.fileformat import load_emulator
from .train import held_out_mask, read_training_rows, training_set_identity

__all__ = ["residual_statistics", "evaluate_emulator", "EvaluationReport", "SIGMA_PROBABILITIES",
           "effective_wavelengths"]

#: Gaussian CDF at -4, -3, -2, -1, 0, +1, +2, +3, +4 sigma: the probabilities of
#: the quantile columns of ``residual_stats`` (0 sigma is the median).
SIGMA_PROBABILITIES = ndtr(np.arange(-4, 5))


def residual_statistics(residuals):
    """Per-filter residual statistics and the covariance between filters.

    Parameters
    ----------
    residuals : ndarray, shape (n_samples, n_filters)
        Emulator minus truth (arsinh mag).

    Returns
    -------
    stats : ndarray, shape (n_filters, 11)
        Columns :data:`RESIDUAL_STAT_COLUMNS`: quantiles at the Gaussian
        probabilities of -4..+4 sigma (median in the middle), mean, standard
        deviation (ddof=1), all in arsinh mag.
    covariance : ndarray, shape (n_filters, n_filters)
        Residual covariance (mag^2, ddof=1).
    """
    r = np.asarray(residuals, dtype=float)
    if r.ndim != 2 or r.shape[0] < 2:
        raise EmulatorConfigurationError(
            f"residual statistics need at least two samples of shape (n, n_filters); got {r.shape}")
    quantiles = np.quantile(r, SIGMA_PROBABILITIES, axis=0).T
    stats = np.column_stack([quantiles, r.mean(axis=0), r.std(axis=0, ddof=1)])
    covariance = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    return stats, covariance


def noise_model_residuals(emulator, params, mags):
    """Test-set residuals in the magnitudes the noise model's error is about.

    For a mass-normalised emulator, ``EmulatorNoiseModel`` treats the stored
    residual sigma as a *fractional* error at every flux, which is the scatter
    of the network's own unit-mass magnitudes (softening ``mass_mu0``), not
    that of the output magnitudes (softening ``mu0``, which compresses faint
    models' residuals).  Plain emulators: the output arsinh magnitudes.

    Parameters
    ----------
    emulator : Emulator
    params : ndarray, shape (n, n_params)
        Emulator inputs of the test rows.
    mags : ndarray, shape (n, n_filters)
        True arsinh magnitudes (mu0 of the emulator) of the test rows.

    Returns
    -------
    ndarray, shape (n, n_filters)
        Emulated minus true magnitudes (arsinh mag).
    """
    from ..runtime.magnitudes import arsinh_mags_to_maggies, maggies_to_arsinh_mags
    if getattr(emulator, "mass_param", None) is None:
        return emulator.predict_mags(params, check=False) - mags
    per_msun = 10.0 ** -params[:, [emulator.param_names.index(emulator.mass_param)]]

    def unit_mags(maggies):
        return maggies_to_arsinh_mags(maggies * per_msun, emulator.mass_mu0, emulator.a)
    return (unit_mags(emulator.predict_maggies(params, check=False))
            - unit_mags(arsinh_mags_to_maggies(mags, emulator.mu0, emulator.a)))


def store_noise_statistics(emulator, test_set, out):
    """Write a copy of a single emulator whose stored residual statistics are
    those the noise model uses (:func:`noise_model_residuals`), from a test set.

    For emulators written before mass-normalised ones stored unit-mass
    statistics.  ``test_set`` is the emulator's own training file (only its
    held-out rows are used) or a fresh set it never saw (every row).

    Returns
    -------
    Emulator
        The emulator written to ``out``.
    """
    import copy
    from ..runtime.fileformat import save_emulator
    if getattr(emulator, "members", None):
        raise EmulatorConfigurationError("store the statistics of each member of a stitched "
                                         "emulator, then stitch them")
    data = read_training_rows(test_set)
    rows = _held_out_rows(emulator, data)
    rows = np.arange(len(data)) if rows is None else np.flatnonzero(rows)
    params = data.params[rows][:, [data.param_names.index(p) for p in emulator.param_names]]
    mags = data.mags[rows][:, [data.filter_names.index(f) for f in emulator.filter_names]]
    stats, cov = residual_statistics(noise_model_residuals(emulator, params, mags))
    emu = copy.deepcopy(emulator)
    emu.residual_stats, emu.residual_covariance = stats, cov
    emu.provenance["residual_stats_magnitudes"] = (
        "unit-mass arsinh magnitudes (mass_mu0)" if emu.mass_param is not None
        else "output arsinh magnitudes (mu0)")
    emu.provenance["residual_stats_from"] = {"file": os.path.basename(os.fspath(test_set)),
                                             "n_rows": int(len(rows))}
    save_emulator(emu, out)
    return emu


def effective_wavelengths(filter_names):
    """sedpy effective wavelengths (Angstrom) of ``filter_names``; NaN where
    sedpy has no such filter (e.g. a custom curve)."""
    from sedpy.observate import load_filters
    waves = []
    for name in filter_names:
        try:
            waves.append(float(load_filters([name])[0].wave_effective))
        except (ValueError, OSError, IndexError):
            waves.append(np.nan)
    return np.array(waves)


@dataclass
class EvaluationReport:
    """Test-set residual statistics of an emulator.

    Attributes
    ----------
    filter_names : list of str
    wave_effective : ndarray
        Effective wavelength of each filter (Angstrom): as recorded in the
        test-set file, else sedpy's; NaN if unknown.
    stats : ndarray, shape (n_filters, 11)
        Columns :data:`RESIDUAL_STAT_COLUMNS` (arsinh mag).
    covariance, correlation : ndarray, shape (n_filters, n_filters)
    residuals : ndarray, shape (n_rows, n_filters)
        Emulator minus truth (arsinh mag).
    n_rows : int
        Test rows used.
    selection : str
        Which rows of the file were used and why.
    extras : dict
        Per extra output (e.g. ``mfrac``): bias and std of log10 residuals (dex).
    files : list of str
        Files written to the report directory.
    """
    filter_names: list
    wave_effective: np.ndarray
    stats: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    residuals: np.ndarray
    n_rows: int
    selection: str
    extras: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    @property
    def bias(self):
        """Mean residual per filter (arsinh mag)."""
        return self.stats[:, RESIDUAL_STAT_COLUMNS.index("mean")]

    @property
    def std(self):
        """Residual standard deviation (precision) per filter (arsinh mag)."""
        return self.stats[:, RESIDUAL_STAT_COLUMNS.index("std")]

    @property
    def max_abs_offdiagonal_correlation(self):
        """Largest |sigma_ij / (sigma_i sigma_j)| for i != j (paper Fig. 6)."""
        c = self.correlation.copy()
        np.fill_diagonal(c, 0.0)
        return float(np.nanmax(np.abs(c))) if c.size > 1 else 0.0

    def per_filter_rows(self):
        """One dict per filter: name, wave_eff_angstrom, bias, std and the quantiles."""
        rows = []
        for i, name in enumerate(self.filter_names):
            row = {"filter": name, "wave_eff_angstrom": float(self.wave_effective[i]),
                   "bias": float(self.bias[i]), "std": float(self.std[i])}
            row.update({c: float(v) for c, v in zip(RESIDUAL_STAT_COLUMNS[:9], self.stats[i, :9])})
            rows.append(row)
        return rows

    def to_dict(self):
        """JSON-ready summary (everything but the raw residuals)."""
        return {"n_rows": self.n_rows, "selection": self.selection,
                "stat_columns": list(RESIDUAL_STAT_COLUMNS),
                "sigma_probabilities": SIGMA_PROBABILITIES.tolist(),
                "summary": {"std_min": float(np.min(self.std)), "std_median": float(np.median(self.std)),
                            "std_max": float(np.max(self.std)),
                            "abs_bias_max": float(np.max(np.abs(self.bias))),
                            "rmse": float(np.sqrt(np.mean(self.residuals ** 2))),
                            "max_abs_offdiagonal_correlation": self.max_abs_offdiagonal_correlation},
                "filters": self.per_filter_rows(), "extras": self.extras,
                "correlation": np.where(np.isfinite(self.correlation), self.correlation, None).tolist()}


def _provenances(emulator):
    prov = getattr(emulator, "provenance", {}) or {}
    return prov.get("stitched", [prov]) if isinstance(prov, dict) else []


def _held_out_rows(emulator, data):
    """Mask of file rows that no member of ``emulator`` trained or validated on,
    if ``data`` is the file it was trained on; None otherwise."""
    ident = {k: v for k, v in training_set_identity(data).items() if k != "file"}
    mask, matched = np.ones(len(data), bool), False
    for prov in _provenances(emulator):
        trained_on = {k: v for k, v in (prov.get("training_set") or {}).items() if k != "file"}
        sel = prov.get("test_selection") or {}
        if trained_on and trained_on == ident and "seed" in sel:
            mask &= held_out_mask(data.rows, sel["seed"], sel["fraction"])
            matched = True
    return mask if matched else None


def evaluate_emulator(emulator, test_set, report_dir=None, n_histograms=4, held_out="auto",
                      verbose=True):
    """Residual statistics of an emulator on a test set, optionally as a report.

    Parameters
    ----------
    emulator : Emulator, StitchedEmulator or str
        The emulator or the path of its native file.
    test_set : str
        Training-set-format HDF5 file (``prospect-emulator generate``).  If
        it is the file the emulator was trained on, only its held-out test
        rows are used (``held_out="auto"``).
    report_dir : str, optional
        Write ``precision_vs_wavelength.png`` (Fig. 5),
        ``residual_correlation.png`` (Fig. 6), ``residual_histograms.png``
        (Fig. 10), ``residuals.json`` and ``residuals.csv`` there.
    n_histograms : int
        Filters shown in the histogram figure (best, median, worst ...).
    held_out : "auto", True or False
        Use only the emulator's held-out rows of its own training file.
        True insists on it (error if the file is not the training file).
    verbose : bool

    Returns
    -------
    EvaluationReport
    """
    if isinstance(emulator, (str, os.PathLike)):
        emulator = load_emulator(emulator)
    data = read_training_rows(test_set)
    missing_p = [p for p in emulator.param_names if p not in data.param_names]
    if missing_p:
        raise EmulatorConfigurationError(
            f"{test_set} lacks emulator inputs {missing_p}; it has {data.param_names}")
    missing_f = [f for f in emulator.filter_names if f not in data.filter_names]
    if missing_f:
        raise EmulatorConfigurationError(
            f"{test_set} lacks emulator filters {missing_f}; it has {data.filter_names}")
    params = data.params[:, [data.param_names.index(p) for p in emulator.param_names]]
    mags = data.mags[:, [data.filter_names.index(f) for f in emulator.filter_names]]

    use = np.ones(len(data), bool)
    notes = []
    mask = _held_out_rows(emulator, data) if held_out else None
    if mask is not None:
        use &= mask
        notes.append(f"the {int(mask.sum())} held-out test rows of the emulator's own training set")
    elif held_out is True:
        raise EmulatorConfigurationError(
            f"{test_set} is not the training set recorded in the emulator's provenance, so it has "
            f"no held-out rows; pass held_out='auto' to use all its rows")
    else:
        notes.append(f"all {len(data)} valid rows of {os.path.basename(data.path)}")
    lo, hi = emulator.param_ranges[:, 0], emulator.param_ranges[:, 1]
    inside = ((params >= lo) & (params <= hi)).all(axis=1)
    if (use & ~inside).any():
        notes.append(f"{int((use & ~inside).sum())} rows outside the training ranges left out")
    use &= inside
    if use.sum() < 2:
        raise EmulatorConfigurationError(
            f"{test_set}: fewer than two usable test rows ({'; '.join(notes)})")

    pred, extras = emulator.predict_mags_and_extras(params[use], check=False)
    residuals = pred - mags[use]
    stats, cov = residual_statistics(residuals)
    sig = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sig, sig)
    extra_stats = {}
    if "mfrac" in emulator.extra_names:
        d = np.log10(extras[:, emulator.extra_names.index("mfrac")]) - np.log10(data.mfrac[use])
        extra_stats["mfrac"] = {"bias_dex": float(d.mean()), "std_dex": float(d.std(ddof=1))}
    if data.filter_wave_effective is not None:     # the curves the test set was made with
        waves = data.filter_wave_effective[[data.filter_names.index(f) for f in emulator.filter_names]]
    else:
        waves = effective_wavelengths(emulator.filter_names)
    report = EvaluationReport(list(emulator.filter_names), waves,
                              stats, cov, corr, residuals, int(use.sum()), "; ".join(notes),
                              extra_stats)
    if verbose:
        print(f"evaluated on {report.n_rows} rows ({report.selection}): residual std "
              f"{report.std.min():.4f}..{report.std.max():.4f} mag (median {np.median(report.std):.4f}), "
              f"max |bias| {np.abs(report.bias).max():.4f} mag, max |off-diagonal correlation| "
              f"{report.max_abs_offdiagonal_correlation:.3f}", flush=True)
    if report_dir is not None:
        write_report(report, report_dir, n_histograms=n_histograms)
        if verbose:
            print(f"wrote {', '.join(report.files)}", flush=True)
    return report


# ------------------------------------------------------------------ report files
def write_report(report, report_dir, n_histograms=4):
    """Write the figures (PNG) and the numbers (JSON, CSV) of ``report``."""
    os.makedirs(report_dir, exist_ok=True)
    files = [_plot_precision(report, os.path.join(report_dir, "precision_vs_wavelength.png")),
             _plot_correlation(report, os.path.join(report_dir, "residual_correlation.png")),
             _plot_histograms(report, os.path.join(report_dir, "residual_histograms.png"), n_histograms)]
    path = os.path.join(report_dir, "residuals.json")
    with open(path, "w") as f:
        json.dump(report.to_dict(), f, indent=1)
    files.append(path)
    path = os.path.join(report_dir, "residuals.csv")
    rows = report.per_filter_rows()
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    files.append(path)
    report.files = files
    return files


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _wave_order(report):
    w = report.wave_effective
    return np.argsort(np.where(np.isfinite(w), w, np.inf), kind="stable")


def _plot_precision(report, path):
    """Bias and precision against effective wavelength (paper Fig. 5)."""
    fig = _figure((8, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ok = np.isfinite(report.wave_effective)
    o = _wave_order(report)
    o = o[ok[o]]
    lam = report.wave_effective[o] / 1e4
    s = report.stats[o]
    c = {n: RESIDUAL_STAT_COLUMNS.index(n) for n in RESIDUAL_STAT_COLUMNS}
    ax1.fill_between(lam, s[:, c["q_m2sigma"]], s[:, c["q_p2sigma"]], color="0.85", label="±2σ quantiles")
    ax1.fill_between(lam, s[:, c["q_m1sigma"]], s[:, c["q_p1sigma"]], color="0.6", label="±1σ quantiles")
    ax1.plot(lam, s[:, c["mean"]], "k.-", label="mean (bias)")
    ax1.plot(lam, s[:, c["median"]], "C1.", label="median")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_ylabel("emulator − truth [mag]")
    ax1.legend(fontsize=8, loc="best")
    ax2.plot(lam, s[:, c["std"]], "C0o-")
    ax2.set_yscale("log")
    ax2.set_ylabel("precision σ [mag]")
    ax2.set_xscale("log")
    ax2.set_xlabel("effective wavelength [µm]")
    fig.suptitle(f"test residuals, {report.n_rows} samples"
                 + ("" if ok.all() else f" ({int((~ok).sum())} filters without sedpy wavelength not shown)"))
    fig.savefig(path, dpi=120)
    return path


def _plot_correlation(report, path):
    """Residual correlation matrix sigma_ij / (sigma_i sigma_j) (paper Fig. 6)."""
    n = len(report.filter_names)
    fig = _figure((7 + 0.05 * n, 6 + 0.05 * n))
    ax = fig.subplots()
    o = _wave_order(report)
    corr = report.correlation[np.ix_(o, o)]
    off = corr.copy()
    np.fill_diagonal(off, 0.0)
    vmax = max(float(np.nanmax(np.abs(off))) if n > 1 else 1.0, 1e-3)
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="σ_ij / (σ_i σ_j)  (diagonal = 1, off scale)")
    if n <= 40:
        names = [report.filter_names[i] for i in o]
        ax.set_xticks(range(n), names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), names, fontsize=6)
    else:
        ax.set_xlabel("filter (by effective wavelength)")
        ax.set_ylabel("filter (by effective wavelength)")
    ax.set_title(f"residual correlation, max |off-diagonal| = {report.max_abs_offdiagonal_correlation:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def histogram_filters(report, n):
    """Indices of up to ``n`` filters to show: best, median and worst precision, then others."""
    order = np.argsort(report.std, kind="stable")
    picks = []
    for q in np.linspace(0, 1, max(n, 1)):
        i = int(order[int(round(q * (len(order) - 1)))])
        if i not in picks:
            picks.append(i)
    return picks[:n]


def _plot_histograms(report, path, n):
    """Residual histograms against a Gaussian of the same sigma (paper Fig. 10)."""
    picks = histogram_filters(report, n)
    ncol = min(2, len(picks))
    nrow = int(np.ceil(len(picks) / ncol))
    fig = _figure((5 * ncol, 3.4 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
    for ax, i in zip(axes, picks):
        r = report.residuals[:, i]
        mu, sd = float(r.mean()), float(r.std(ddof=1))
        lim = max(5 * sd, float(np.max(np.abs(r - mu))))
        bins = np.linspace(mu - lim, mu + lim, 81)
        ax.hist(r, bins=bins, density=True, histtype="stepfilled", color="C0", alpha=0.6,
                label="residuals")
        x = np.linspace(bins[0], bins[-1], 400)
        ax.plot(x, np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), "k-",
                label=f"Gaussian σ={sd:.4f}")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5 / (len(r) * (bins[1] - bins[0])))
        ax.set_title(report.filter_names[i], fontsize=9)
        ax.set_xlabel("emulator − truth [mag]")
        ax.legend(fontsize=7)
    for ax in axes[len(picks):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
