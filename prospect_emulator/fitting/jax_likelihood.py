"""The exact-fit likelihood as jitted JAX functions (the optional ``jax`` path).

:class:`JaxLikelihood` is a JAX twin of
:class:`~prospect_emulator.prospector.VectorisedLikelihood`, built from one: the
same emulator weights (normalisation folded in, :meth:`Emulator.compiled_network`), the
same observed photometry, mask and eq.-9 noise model (diagonal or covariance),
the same prior transform.  It gives, for one parameter vector at a time (use
``jax.vmap`` for many):

* :meth:`JaxLikelihood.prior_transform`: unit cube -> parameters, Prospector's
  ``prior_transform``;
* :meth:`JaxLikelihood.lnlike`: ln-likelihood, ``-inf`` outside the prior's
  support or the emulator's training range (``lnprobfn(..., nested=True)``);
* :meth:`JaxLikelihood.lnlike_unit`: both in one, on the unit cube, and
  :meth:`JaxLikelihood.lnprior_unit`, the uniform prior there (what a nested
  sampler in unit coordinates needs).

They run in float64 (inside ``jax.enable_x64(True)``, which the caller must
also hold while it calls them; :func:`jax_float64` is that context) and equal
``VectorisedLikelihood.lnlike`` to 1e-10 (tested).  JAX is imported only when a
:class:`JaxLikelihood` is made (``pip install prospect-emulator[jax]``); the
NumPy fitting path never imports it.

What it serves (anything else is a clear error at construction): a single
:class:`~prospect_emulator.Emulator` (not stitched); emulator inputs that are
free parameters, their log10 (``logX`` inputs of a free ``X``) or fixed values
(no other ``depends_on`` transform between theta and the emulator, no
``lumdist``); priors whose transform has a closed form
(``TopHat``/``Uniform``, ``Normal``, ``ClippedNormal``, ``LogUniform``,
``LogNormal``, ``FastTruncatedEvenStudentTFreeDeg2``).
"""
import numpy as np

from ..errors import EmulatorConfigurationError
from ..prospector.noise import LN_2PI
from ..prospector.vectorised import LINALG_FAILURE_LNLIKE, VectorisedLikelihood
from ..runtime.emulator import GELU_C, Emulator

__all__ = ["JaxLikelihood", "jax_float64", "prng_key", "SUPPORTED_JAX_PRIOR_FAMILIES"]

#: Prior-transform families (see :meth:`FastPriorTransform.closed_form_table`)
#: the JAX transform implements.
SUPPORTED_JAX_PRIOR_FAMILIES = ("uniform", "normal", "clipped_normal", "log_uniform",
                                "log_normal")

def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise EmulatorConfigurationError(
            "the JAX likelihood needs jax: pip install 'prospect-emulator[jax]'") from None
    return jax, jnp


def prng_key(seed):
    """A JAX PRNG key from ``seed`` (int), or from fresh OS entropy when ``seed``
    is None (unseeded, as :func:`~prospect_emulator.fitting.samplers.run_sampler`
    documents)."""
    jax, _ = _jax()
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**32)
    return jax.random.PRNGKey(int(seed))


def jax_float64():
    """The context in which the JAX likelihood runs: ``jax.enable_x64(True)``."""
    jax, _ = _jax()
    return jax.enable_x64(True)


class JaxLikelihood:
    """JAX functions of one galaxy's likelihood; see the module docstring.

    Parameters
    ----------
    likelihood : VectorisedLikelihood
        Its model, obs and noise model are used; its ``float32`` setting is
        not (the JAX pass is float64).

    Raises
    ------
    EmulatorConfigurationError
        JAX not installed, or a model, emulator or prior this path does not
        serve (the message names it and what is allowed).
    """

    def __init__(self, likelihood):
        if not isinstance(likelihood, VectorisedLikelihood):
            raise EmulatorConfigurationError(
                f"JaxLikelihood is built from a VectorisedLikelihood; got "
                f"{type(likelihood).__name__}")
        self._jax, self._jnp = _jax()
        self.likelihood = likelihood
        self.ndim = likelihood.ndim
        emulator = likelihood.float64_emulator
        if type(emulator) is not Emulator:
            raise EmulatorConfigurationError(
                f"the JAX likelihood serves a single Emulator, not a {type(emulator).__name__}; "
                "use a NumPy sampler (dynesty, ultranest, emcee)")
        self._emulator = emulator
        self._net = emulator.compiled_network()
        with np.errstate(all="ignore"):  # the ends of every parameter's prior support
            self._support = (likelihood.prior_transform(np.zeros(self.ndim)),
                             likelihood.prior_transform(np.ones(self.ndim)))
        self._input_source, self._input_log10, self._input_fixed = self._input_map()
        self._fallback_inputs = 0.5 * (self._net["lower"] + self._net["upper"])
        self._transform_parts = self._transform_table()
        self._obs_terms = self._noise_terms()

    # ---------------------------------------------------------------- set-up
    def _input_map(self):
        """(source, log10, fixed): emulator input j is theta[source[j]] (or its
        log10 where log10[j]) where source[j] >= 0, else the fixed value
        fixed[j] (log10 applied); from the model's own input plan."""
        model, plan = self.likelihood.model, self.likelihood.parameters
        names = self._emulator.param_names
        derived = [names[j] for j, (base, _) in enumerate(plan.sources)
                   if model.config_dict.get(base, {}).get("depends_on") is not None]
        if not plan.inputs_direct or derived:
            raise EmulatorConfigurationError(
                f"emulator input(s) {derived or names} are computed from the free parameters "
                f"by depends_on transforms; the JAX likelihood serves inputs that are free "
                f"parameters ({list(model.theta_labels())}), their log10, or fixed values. "
                "Use a NumPy sampler")
        if plan.has_lumdist:
            raise EmulatorConfigurationError(
                "the JAX likelihood does not apply lumdist (a distance other than the "
                "redshift's); use a NumPy sampler")
        index = model.theta_index
        source, fixed = np.full(len(names), -1), np.zeros(len(names))
        log10 = np.zeros(len(names), dtype=bool)
        log10[plan.log_inputs] = True
        for j, (base, i) in enumerate(plan.sources):
            if base in index:
                source[j] = index[base].start + i
            else:
                value = float(np.ravel(model.params[base])[i])
                fixed[j] = np.log10(value) if log10[j] else value
        net, lower = self._net, self._support[0]
        bad = [f"{names[j]}={fixed[j]:g} not in [{net['lower'][j]:g}, {net['upper'][j]:g}]"
               for j in np.nonzero(source < 0)[0]
               if not net["lower"][j] <= fixed[j] <= net["upper"][j]]
        if bad:
            raise EmulatorConfigurationError(
                "fixed parameter(s) outside the emulator's training range, so every model "
                "would be rejected: " + "; ".join(bad))
        for j in np.nonzero(log10 & (source >= 0))[0]:
            if not lower[source[j]] > 0:
                raise EmulatorConfigurationError(
                    f"emulator input {names[j]!r} is log10 of a free parameter whose prior "
                    f"reaches {lower[source[j]]:g} <= 0; give it a positive support")
        return source, log10, fixed

    def _transform_table(self):
        families, fallback = self.likelihood.prior_transform_table()
        unsupported = sorted(set(families) - set(SUPPORTED_JAX_PRIOR_FAMILIES))
        import prospect.models.priors as pp
        t_blocks = []
        for prior, inds in fallback:
            if type(prior) is not pp.FastTruncatedEvenStudentTFreeDeg2:
                # a class without a closed form here, or (ClippedNormal) a window
                # beyond ~37 sigma in a tail, left to Prospector by the NumPy transform
                unsupported.append(f"{type(prior).__name__} of {prior.name or 'a parameter'}")
                continue
            n = inds.stop - inds.start
            t_blocks.append({"theta_index": np.arange(inds.start, inds.stop),
                             "hw": np.broadcast_to(np.asarray(prior.hw, float), (n,)),
                             "sig": np.broadcast_to(np.asarray(prior.sig, float), (n,))})
        if unsupported:
            raise EmulatorConfigurationError(
                f"the JAX prior transform has no closed form for {unsupported}; it serves "
                f"{list(SUPPORTED_JAX_PRIOR_FAMILIES)} (a ClippedNormal only with a window "
                "within ~37 sigma of its mean) and FastTruncatedEvenStudentTFreeDeg2. Use a "
                "NumPy sampler")
        return families, t_blocks

    def _noise_terms(self):
        emu, terms = self._emulator, self.likelihood.photometry_terms()
        if not terms:
            raise EmulatorConfigurationError("the JAX likelihood needs photometry (obs['maggies'])")
        sel = terms["sel"]
        if terms["noise"] == "diagonal":
            terms["k"] = ((emu.residual_sigma / emu.a) ** 2)[sel]
        elif terms["noise"] == "covariance":
            terms["cov"] = emu.residual_covariance[np.ix_(sel, sel)]
        return terms

    # ------------------------------------------------------------- functions
    def _one_vector(self, v, what):
        """``v`` as a float64 JAX vector of shape (ndim,), or a clear error."""
        jnp = self._jnp
        if jnp.asarray(0.0).dtype != jnp.float64:
            raise EmulatorConfigurationError(
                f"JaxLikelihood.{what} runs in float64: call (and jit) it inside "
                "`with jax_float64():` (jax.enable_x64(True))")
        v = jnp.asarray(v)
        if v.shape != (self.ndim,):
            raise EmulatorConfigurationError(
                f"JaxLikelihood.{what} takes one vector of shape ({self.ndim},); got {v.shape} "
                "(use jax.vmap for many)")
        return v

    def prior_transform(self, u):
        """Parameters (ndim,) at unit-cube coordinates ``u`` (ndim,).

        The ClippedNormal closed form is used in the far upper tail too
        (z > 4), where the NumPy transform hands over to scipy's
        ``truncnorm.ppf``: they differ there by ~1e-12 sigma.
        """
        jnp = self._jnp
        u = self._one_vector(u, "prior_transform")
        from jax.scipy.special import ndtri
        families, t_blocks = self._transform_parts
        theta = jnp.zeros(self.ndim, dtype=u.dtype)
        for name, f in families.items():
            x = u[f["theta_index"]]
            if name == "uniform":
                value = x * f["scale"] + f["loc"]
            elif name == "normal":
                value = ndtri(x) * f["scale"] + f["loc"]
            elif name == "clipped_normal":
                z = f["sign"] * ndtri(f["base"] + (f["flip"] + f["sign"] * x) * f["mass"])
                value = z * f["scale"] + f["loc"]
            elif name == "log_uniform":
                value = jnp.exp(f["log_mini"] + x * f["log_ratio"])
            else:  # log_normal
                value = jnp.exp(f["sigma"] * ndtri(x)) * f["scale"]
            theta = theta.at[f["theta_index"]].set(value)
        for b in t_blocks:  # Prospector's closed-form inverse CDF of this prior
            x = u[b["theta_index"]]
            c3, c4 = (2.0 * b["sig"] * b["hw"]) ** 2, 2.0 * b["hw"] ** 2
            num = -(c3 * x * x - c3 * x + (b["sig"] * b["hw"]) ** 2)
            den = c4 * x * x - c4 * x - b["sig"] ** 2
            root = jnp.sqrt(num / den)
            theta = theta.at[b["theta_index"]].set(jnp.where(x > 0.5, root, -root))
        return theta

    def maggies(self, x):
        """Emulator fluxes (maggies, n_filters) at inputs ``x`` (n_params,):
        :meth:`Emulator.predict_maggies` with jax.numpy."""
        jnp, net = self._jnp, self._net
        h = x
        for w, b in net["hidden"]:
            z = h @ w + b
            # 2 GELU_tanh(z) of eq. 6; the 1/2 is in the next layer (Emulator.compiled_network)
            h = z * (1.0 + jnp.tanh(GELU_C * z * (1.0 + 0.044715 * z * z)))
        raw = h @ net["w_out"] + net["b_out"]
        return jnp.sinh(raw[:self._emulator.n_filters]) * self._flux_scale_at(x)

    def _flux_scale_at(self, x):
        """Maggies per unit sinh(z) at inputs x: the compiled scale, times
        10**logmass for a mass-normalised emulator (also its softening flux)."""
        net = self._net
        if net["mass_index"] is None:
            return net["flux_scale"]
        return net["flux_scale"] * 10.0 ** x[net["mass_index"]]

    def emulator_inputs(self, theta):
        """Emulator inputs (n_params,) of parameters ``theta`` (ndim,)."""
        jnp = self._jnp
        src = self._input_source
        value = theta[np.maximum(src, 0)]
        value = jnp.where(self._input_log10, jnp.log10(jnp.where(self._input_log10, value, 1.0)),
                          value)
        return jnp.where(src >= 0, value, self._input_fixed)

    def lnlike(self, theta):
        """ln-likelihood of ``theta`` (ndim,), ``-inf`` outside the prior's
        support or the training range: ``VectorisedLikelihood.lnlike``."""
        jnp, emu, t = self._jnp, self._emulator, self._obs_terms
        theta = self._one_vector(theta, "lnlike")
        x = self.emulator_inputs(theta)
        inside = jnp.all((x >= self._net["lower"]) & (x <= self._net["upper"]))
        # rows outside are evaluated at the middle of the range (finite), then dropped
        flux = self.maggies(jnp.where(inside, x, self._fallback_inputs))
        f = flux[t["sel"]]
        resid = t["phot"] - f
        if t["noise"] is None:
            lnl = jnp.sum(-0.5 * (resid * resid / t["var"] + jnp.log(2.0 * np.pi * t["var"])))
        else:
            soft = self._flux_scale_at(x)
            if t["noise"] == "diagonal":
                sigma = (f * f + soft * soft) * t["k"] + t["base_var"]
                lnl = -0.5 * (jnp.sum(resid * resid / sigma) + jnp.sum(jnp.log(sigma))
                              + len(f) * LN_2PI)
            else:
                jac = jnp.sqrt(f * f + soft * soft) / emu.a
                sigma = jac[:, None] * t["cov"] * jac[None, :] + jnp.diag(t["base_var"])
                chol = jnp.linalg.cholesky(sigma)
                y = self._jax.scipy.linalg.solve_triangular(chol, resid, lower=True)
                lnl = -0.5 * (jnp.sum(y * y) + 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
                              + len(f) * LN_2PI)
                # not positive definite: NaN from the Cholesky factor; Prospector's value
                lnl = jnp.where(jnp.isfinite(lnl), lnl, LINALG_FAILURE_LNLIKE)
        lnl = lnl + getattr(self.likelihood.model, "_ln_eline_penalty", 0.0)
        return jnp.where(inside & self._in_prior_support(theta), lnl, -jnp.inf)

    def _in_prior_support(self, theta):
        jnp = self._jnp
        lower, upper = self._support
        return jnp.all((theta >= lower) & (theta <= upper))

    def _in_unit_cube(self, u):
        return self._jnp.all((u > 0.0) & (u < 1.0))

    def lnprior_unit(self, u):
        """ln-prior in unit-cube coordinates ``u`` (ndim,): 0 inside the open
        unit cube (the prior is uniform there), ``-inf`` outside."""
        u = self._one_vector(u, "lnprior_unit")
        return self._jnp.where(self._in_unit_cube(u), 0.0, -self._jnp.inf)

    def lnprior_normal(self, y):
        """ln-prior in whitened coordinates ``y = Phi^-1(u)`` (ndim,): the
        standard normal (the prior itself, mapped through its CDF and the
        normal quantile function)."""
        jnp = self._jnp
        y = self._one_vector(y, "lnprior_normal")
        return -0.5 * jnp.sum(y * y) - 0.5 * y.shape[0] * jnp.log(2.0 * jnp.pi)

    def lnlike_normal(self, y):
        """ln-likelihood at whitened coordinates ``y = Phi^-1(u)`` (ndim,)."""
        from jax.scipy.special import ndtr
        return self.lnlike_unit(ndtr(self._one_vector(y, "lnlike_normal")))

    def lnlike_unit(self, u):
        """ln-likelihood at unit-cube coordinates ``u`` (ndim,); ``-inf``
        outside the open unit cube or the training range."""
        jnp = self._jnp
        u = self._one_vector(u, "lnlike_unit")
        inside = self._in_unit_cube(u)
        theta = self.prior_transform(jnp.where(inside, u, 0.5))
        return jnp.where(inside, self.lnlike(theta), -jnp.inf)
