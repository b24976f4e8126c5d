"""Importance weights: an amortized posterior's draws turned into draws of the exact posterior.

The flow q(theta | x) is used as a proposal, and each of its draws gets the
weight (neural importance sampling; Dax et al. 2023, Phys. Rev. Lett. 130,
171403)

    w = L(x | theta) pi(theta) / q(theta | x),

with L Prospector's likelihood of the emulated model and the eq.-9 noise model
-- the likelihood the exact fits sample
(:class:`~prospect_emulator.prospector.vectorised.VectorisedLikelihood`,
``lnprobfn`` row by row).  In the flow's prior-normal coordinates y the prior
is a standard normal, so ``ln w = ln L + ln N(y; 0, 1) - ln q(y | x)`` up to a
constant per object.  The weighted draws are resampled (systematic
resampling) to equally weighted ones, so that everything downstream reads
them like the flow's own draws.

The weights correct what the flow got wrong (an interval too wide or too
narrow, a shifted median) wherever its draws cover the exact posterior; the
effective sample size ``(sum w)^2 / sum w^2`` (Kish) says how many
independent draws the result is worth, and a small one says that they do
not cover it: such objects are flagged (see
:meth:`~prospect_emulator.amortized.AmortizedPosterior.sample`).
"""
import numpy as np

from ..fitting.smc import effective_sample_size  # Kish's, one home (re-exported)

__all__ = ["ExactLikelihoodWeights", "effective_sample_size", "resample_by_ln_weights"]


def resample_by_ln_weights(ln_weights, n, rng):
    """Indices of ``n`` draws resampled in proportion to their weights (systematic
    resampling, :func:`~prospect_emulator.fitting.smc.systematic_resample`).

    Parameters
    ----------
    ln_weights : ndarray, shape (m,)
        Unnormalised ln-weights; at least one finite.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (n,)
        Positions in the m draws, in random order.
    """
    from ..fitting.smc import systematic_resample
    ln_weights = np.asarray(ln_weights, dtype=float)
    w = np.exp(ln_weights - np.max(ln_weights))
    return rng.permutation(systematic_resample(w / w.sum(), n, rng))


class ExactLikelihoodWeights:
    """Importance weights of flow draws under the exact likelihood of one posterior's model.

    Parameters
    ----------
    model : EmulatedSpecModel
        The model the flow was trained under (free redshift).
    filter_names : list of str
        The bands of the photometry, in the order of the arrays given.
    floor : float
        Eq. 9's fractional floor, as in the exact fits.
    float32 : bool
        Use the float32 forward pass where its outputs stay within 1e-4 mag of
        float64 (:class:`~prospect_emulator.prospector.vectorised.VectorisedLikelihood`).
    """

    def __init__(self, model, filter_names, floor=0.05, float32=True):
        from ..prospector import EmulatorNoiseModel
        from ..prospector.vectorised import VectorisedLikelihood
        n = len(filter_names)
        obs = {"filters": list(filter_names), "maggies": np.ones(n), "maggies_unc": np.ones(n),
               "spectrum": None, "wavelength": None}
        self._likelihood = VectorisedLikelihood(
            model, obs, EmulatorNoiseModel(model, floor=floor), float32=float32)

    def ln_likelihood(self, theta, maggies, maggies_unc, mask):
        """ln L of parameter rows for one object's photometry (-inf outside the prior's
        support or the emulator's training range).

        Parameters
        ----------
        theta : ndarray, shape (n, ndim)
            Full parameter vectors (redshift included).
        maggies, maggies_unc : ndarray, shape (n_filters,)
        mask : ndarray of bool, shape (n_filters,)
            Bands used.
        """
        like = self._likelihood.for_photometry(np.where(mask, maggies, 0.0),
                                               np.where(mask, maggies_unc, 1.0), mask)
        return like.lnlike(theta)

    def resample(self, theta, ln_q, ln_prior, maggies, maggies_unc, mask, n_samples, seed):
        """Reweight every object's flow draws and resample them.

        Parameters
        ----------
        theta : ndarray, shape (n_objects, n_draws, ndim)
            Flow draws (full parameter vectors).
        ln_q, ln_prior : ndarray, shape (n_objects, n_draws)
            ln-densities of the flow and of the prior at the draws, in the
            same coordinates.
        maggies, maggies_unc : ndarray, shape (n_objects, n_filters)
        mask : ndarray of bool, shape (n_objects, n_filters)
        n_samples : int
            Equally weighted draws returned per object.
        seed : int
            Resampling seed (object i resamples with ``[seed, i]``).

        Returns
        -------
        samples : ndarray, shape (n_objects, n_samples, ndim)
            NaN for an object none of whose draws has a finite likelihood.
        ess : ndarray, shape (n_objects,)
            Effective sample size of each object's weights.
        """
        n_obj = len(theta)
        out = np.full((n_obj, int(n_samples), theta.shape[2]), np.nan)
        ess = np.zeros(n_obj)
        for i in range(n_obj):
            ln_w = self.ln_likelihood(theta[i], maggies[i], maggies_unc[i], mask[i])
            ln_w += ln_prior[i] - ln_q[i]
            ln_w = np.where(np.isfinite(ln_w), ln_w, -np.inf)
            if not np.isfinite(ln_w).any():
                continue
            ess[i] = effective_sample_size(ln_w)
            pick = resample_by_ln_weights(ln_w, int(n_samples), np.random.default_rng([seed, i]))
            out[i] = theta[i][pick]
        return out, ess
