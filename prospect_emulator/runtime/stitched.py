"""Composite emulator over redshift (paper Sec. 4.3, eq. 11-13).

Member emulators trained on overlapping redshift domains
``z_L,i <= z <= z_H,i`` are blended in flux density (maggies) with weights

    a_i(z) = 1                  for z_H,i-1 <= z <= z_L,i+1
           = sin^2 theta_i-1(z) for z_L,i  <= z <  z_H,i-1
           = cos^2 theta_i(z)   for z_L,i+1 < z <= z_H,i
           = 0                  outside [z_L,i, z_H,i]
    theta_i(z) = pi/2 (z - z_L,i+1) / (z_H,i - z_L,i+1)

which sum to one and have a continuous first derivative in z.
"""
import numpy as np

from ..errors import EmulatorConfigurationError
from .emulator import EmulatorBase
from .magnitudes import maggies_to_arsinh_mags

__all__ = ["StitchedEmulator"]


class StitchedEmulator(EmulatorBase):
    """Several redshift-domain emulators acting as one (eq. 11-13).

    Parameters
    ----------
    members : sequence of Emulator
        Each member's redshift domain is its training range of ``zred_param``.
        Domains must overlap pairwise in sequence (no gap, non-zero overlap)
        and no redshift may be covered by more than two members.  Members
        must have the same parameter names in the same order, the same extra
        outputs, and the same filters (in any order: the first member's
        order is used).
    zred_param : str
        Name of the redshift input.

    Notes
    -----
    Only members with a non-zero weight at a given redshift are evaluated.
    Prediction API and statistics are those of
    :class:`~prospect_emulator.Emulator`; the fixed statistics
    (``residual_sigma``, ``residual_stats``, ``residual_covariance``) are the
    worst case over the members, and ``residual_sigma_at(x)`` /
    ``residual_covariance_at(x)`` give the weight-averaged variance that
    applies at given inputs.
    """

    residuals_vary_with_inputs = True  # weight-averaged across the overlaps

    def __init__(self, members, zred_param="zred"):
        members = list(members)
        if len(members) < 1:
            raise EmulatorConfigurationError("a stitched emulator needs at least one member")
        first = members[0]
        for k, m in enumerate(members):
            if zred_param not in m.param_names:
                raise EmulatorConfigurationError(
                    f"member {k} has no redshift input {zred_param!r}; its inputs are {m.param_names}")
            if sorted(m.param_names) != sorted(first.param_names):
                raise EmulatorConfigurationError(
                    f"member {k} has inputs {m.param_names}, member 0 has {first.param_names}")
            if m.param_names != first.param_names:
                raise EmulatorConfigurationError(
                    f"member {k} orders its inputs differently from member 0: {m.param_names} vs {first.param_names}")
            if sorted(m.filter_names) != sorted(first.filter_names):
                missing = sorted(set(first.filter_names) ^ set(m.filter_names))
                raise EmulatorConfigurationError(f"members 0 and {k} differ in filters {missing}")
            if m.extra_names != first.extra_names:
                raise EmulatorConfigurationError(
                    f"members 0 and {k} differ in extra outputs: {first.extra_names} vs {m.extra_names}")
        self.zred_param = zred_param
        self._iz = first.param_names.index(zred_param)
        members = [m if m.filter_names == first.filter_names else m.select(first.filter_names)
                   for m in members]
        members.sort(key=lambda m: m.param_ranges[self._iz, 0])
        self.members = members
        self.z_low = np.array([m.param_ranges[self._iz, 0] for m in members])
        self.z_high = np.array([m.param_ranges[self._iz, 1] for m in members])
        for i in range(len(members) - 1):
            if self.z_high[i] >= self.z_high[i + 1] or self.z_low[i] == self.z_low[i + 1]:
                inner, outer = (i + 1, i) if self.z_high[i] >= self.z_high[i + 1] else (i, i + 1)
                raise EmulatorConfigurationError(
                    f"redshift domain [{self.z_low[inner]}, {self.z_high[inner]}] lies inside "
                    f"[{self.z_low[outer]}, {self.z_high[outer]}]")
            if self.z_low[i + 1] >= self.z_high[i]:
                raise EmulatorConfigurationError(
                    f"gap or zero-width overlap between redshift domains [{self.z_low[i]}, {self.z_high[i]}] "
                    f"and [{self.z_low[i+1]}, {self.z_high[i+1]}]: neighbours must overlap")
            if i + 2 < len(members) and self.z_low[i + 2] <= self.z_high[i]:
                raise EmulatorConfigurationError(
                    f"redshifts {self.z_low[i+2]}..{self.z_high[i]} are covered by more than two members "
                    f"(domains {i}, {i+1}, {i+2})")
        self.param_names = list(first.param_names)
        self.filter_names = list(first.filter_names)
        self.extra_names = list(first.extra_names)
        self.mu0, self.a = first.mu0, first.a
        ranges = np.array([m.param_ranges for m in members])
        # other parameters: the range every member was trained on
        self.param_ranges = np.column_stack([ranges[:, :, 0].max(axis=0), ranges[:, :, 1].min(axis=0)])
        self.param_ranges[self._iz] = [self.z_low[0], self.z_high[-1]]
        self._set_check_bounds()
        self.provenance = {"stitched": [m.provenance for m in members]}

    # -------------------------------------------------------------- weights
    def weights(self, zred):
        """Blending coefficients a_i(z) of eq. 12, shape (..., n_members)."""
        z = np.asarray(zred, dtype=float)[..., None]
        zl, zh = self.z_low, self.z_high
        # z_H,i-1 with z_H,0 = -inf and z_L,i+1 with z_L,K+1 = +inf (eq. 11)
        zh_prev = np.concatenate([[-np.inf], zh[:-1]])
        zl_next = np.concatenate([zl[1:], [np.inf]])
        with np.errstate(invalid="ignore", divide="ignore"):
            rise = np.sin(0.5 * np.pi * (z - zl) / (zh_prev - zl)) ** 2
            fall = np.cos(0.5 * np.pi * (z - zl_next) / (zh - zl_next)) ** 2
        a = np.where((z >= zh_prev) & (z <= zl_next), 1.0, 0.0)
        a = np.where((z >= zl) & (z < zh_prev), rise, a)
        a = np.where((z > zl_next) & (z <= zh), fall, a)
        # cos^2(pi/2) is 0 in eq. 12 but 3.7e-33 in floating point: make it 0
        # so that a member is never evaluated at the end of its fade-out
        return np.where((z < zl) | (z > zh) | ((z == zh) & (z > zl_next)), 0.0, a)

    # ------------------------------------------------------------ statistics
    @property
    def residual_stats(self):
        """Per filter, the statistics row of the member with the largest scatter (mag)."""
        stats = np.array([m.residual_stats for m in self.members])
        worst = np.nanargmax(stats[:, :, -1], axis=0) if np.isfinite(stats[:, :, -1]).any() \
            else np.zeros(self.n_filters, dtype=int)
        return stats[worst, np.arange(self.n_filters)]

    @property
    def residual_sigma(self):
        """Per-filter residual standard deviation, worst member (arsinh mag)."""
        return self.residual_stats[:, -1]

    @property
    def residual_covariance(self):
        """Residual covariance of the member with the largest total variance (mag^2)."""
        covs = [m.residual_covariance for m in self.members]
        traces = [np.trace(c) for c in covs]
        if np.isnan(traces).all():  # no member has statistics: unknown (NaN), like theirs
            return covs[0]
        return covs[int(np.nanargmax(traces))]

    def residual_covariance_at(self, x):
        """Weight-averaged residual covariance sum_i a_i C_i at inputs ``x`` (mag^2)."""
        a = self.weights(np.asarray(x, dtype=float)[..., self._iz])
        return np.einsum("...k,kij->...ij", a, np.array([m.residual_covariance for m in self.members]))

    def error_softening_flux(self, x):
        """Largest of the members' :meth:`Emulator.error_softening_flux` at
        ``x`` (maggies): the conservative choice where they differ."""
        return max(m.error_softening_flux(x) for m in self.members)

    def residual_sigma_at(self, x):
        """sqrt(sum_i a_i sigma_i^2) at inputs ``x`` (arsinh mag)."""
        a = self.weights(np.asarray(x, dtype=float)[..., self._iz])
        var = np.array([m.residual_sigma ** 2 for m in self.members])
        return np.sqrt(a @ var)

    # ----------------------------------------------------------- prediction
    def _blend(self, x):
        """(maggies, extras): eq. 13 for fluxes; extras blended linearly too."""
        x2 = np.atleast_2d(x)
        a = self.weights(x2[:, self._iz])
        flux = np.zeros((len(x2), self.n_filters))
        extras = np.zeros((len(x2), len(self.extra_names)))
        for k, m in enumerate(self.members):
            rows = np.nonzero(a[:, k] > 0)[0]
            if rows.size == 0:
                continue
            xm = x2[rows]
            maggies, ex = m.predict_maggies_and_extras(xm, check=False)
            w = a[rows, k][:, None]
            flux[rows] += w * maggies
            extras[rows] += w * ex
        if np.ndim(x) == 1:
            return flux[0], extras[0]
        return flux, extras

    def predict_maggies(self, x, check=True):
        """Blended flux densities (maggies), eq. 13."""
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        return self._blend(x)[0]

    def predict_mags(self, x, check=True):
        """Arsinh magnitudes of the blended flux densities."""
        return maggies_to_arsinh_mags(self.predict_maggies(x, check=check), self.mu0, self.a)

    def predict_mags_and_extras(self, x, check=True):
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        flux, extras = self._blend(x)
        return maggies_to_arsinh_mags(flux, self.mu0, self.a), extras

    def predict_maggies_and_extras(self, x, check=True):
        """Blended flux densities (maggies, eq. 13) and extra outputs."""
        x = self.check_inputs(x) if check else np.asarray(x, dtype=float)
        return self._blend(x)

    def filter_indices(self, filter_names):
        return self.members[0].filter_indices(filter_names)

    def select(self, filter_names):
        """A stitched emulator whose outputs are exactly ``filter_names``."""
        return StitchedEmulator([m.select(filter_names) for m in self.members], self.zred_param)

    def __repr__(self):
        doms = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.z_low, self.z_high))
        return f"<StitchedEmulator: {len(self.members)} members over {self.zred_param} in {doms}>"
