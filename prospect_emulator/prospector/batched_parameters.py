"""A Prospector model's parameters for many parameter vectors at once.

``SpecModel.set_parameters`` computes every ``depends_on`` transform for one
parameter vector; calling it row by row costs ~100 us per row.
:class:`BatchedParameters` computes, for an (n, ndim) array of parameter
vectors, only the parameters asked for (by default those the emulator inputs,
and with ``lumdist`` the redshift and distance, read), each ``depends_on``
transform once for all rows with its batched version
(:func:`prospect_emulator.transforms.batched_transform`).  If a needed
transform has no batched version, the parameters are computed row by row
with the model's own ``set_parameters`` (exact, slow).  The model's
:attr:`params` are never changed.

Used by the vectorised likelihood, the amortized simulations and the derived
quantities of posterior draws::

    batched = BatchedParameters(model, extra=("agebins", "mass"))
    rows = batched.rows(theta)                    # name -> (n, *shape)
    x, zred, lumdist = batched.inputs_of_rows(rows, len(theta))   # emulator inputs
"""
import numpy as np

from ..transforms import batched_transform

__all__ = ["BatchedParameters"]


class BatchedParameters:
    """Parameters of an :class:`~prospect_emulator.EmulatedSpecModel` for many rows.

    Parameters
    ----------
    model : EmulatedSpecModel
    extra : sequence of str
        Model parameters wanted besides the emulator inputs (e.g. ``agebins``
        and ``mass`` for the SFH).

    Attributes
    ----------
    sources : list of (str, int)
        Model parameter and element of every emulator input.
    log_inputs : ndarray of int
        Inputs that are log10 of their model parameter.
    has_lumdist : bool
        The model has a ``lumdist`` (the inputs then also need ``zred``).
    inputs_direct : bool
        Every input is a free or fixed parameter (no transform), so
        d inputs / d theta is analytic.
    fixed_inputs : ndarray of int
        Inputs read from fixed parameters.
    row_by_row : bool
        A needed transform has no batched version.
    """

    def __init__(self, model, extra=()):
        self.model = model
        sources = model._input_sources()
        self.sources = sources
        self.log_inputs = model._log_inputs.copy()
        self.has_lumdist = model.params.get("lumdist") is not None
        needed = {b for b, _ in sources} | set(extra)
        if self.has_lumdist:
            needed |= {"zred", "lumdist"}
        self._shapes = {name: np.shape(np.atleast_1d(value)) for name, value in model.params.items()}
        # transforms in configuration order (as set_parameters runs them); walk
        # back from the needed parameters to the transforms they depend on
        deps = [(name, info["depends_on"]) for name, info in model.config_dict.items()
                if info.get("depends_on") is not None]
        plan, self.row_by_row = [], False
        for name, func in reversed(deps):
            if name not in needed:
                continue
            batched = batched_transform(func)
            if batched is None:  # unknown transform: set_parameters row by row
                self.row_by_row = True
                break
            plan.append((name, batched[0], batched[1]))
            needed |= set(batched[1])
        self._transform_plan = plan[::-1]
        self._needed = needed
        derived = {name for name, _ in deps}
        index = model.theta_index
        self.inputs_direct = not self.row_by_row and not (needed & derived)
        self.fixed_inputs = np.array(
            [j for j, (b, _) in enumerate(sources) if b not in index and b not in derived],
            dtype=int)

    def rows(self, theta):
        """Every needed model parameter for every row of ``theta`` (n, ndim): name ->
        array (n, *shape of the parameter)."""
        model, theta = self.model, np.atleast_2d(np.asarray(theta, dtype=float))
        n = len(theta)
        if self.row_by_row:
            rows = {name: [] for name in self._needed}
            saved = model.theta.copy()
            try:
                for t in theta:
                    model.set_parameters(t)
                    for name in self._needed:
                        rows[name].append(np.array(model.params[name], dtype=float, ndmin=1))
            finally:
                model.set_parameters(saved)
            return {name: np.array(v) for name, v in rows.items()}
        index = model.theta_index
        values = {}

        def value(name):
            v = values.get(name)
            if v is None:
                if name in index:
                    v = theta[:, index[name]]
                else:  # fixed (or a transform's output not recomputed here)
                    fixed = np.asarray(model.params[name])
                    v = np.broadcast_to(fixed, (n,) + np.shape(np.atleast_1d(fixed)))
                values[name] = v
            return v

        for name, func, argnames in self._transform_plan:
            out = np.asarray(func(*[value(a) for a in argnames]))
            values[name] = out.reshape((n,) + self._shapes[name])
        return {name: value(name) for name in self._needed}

    def inputs(self, theta):
        """(emulator inputs (n, n_params), zred (n,) or None, lumdist (n,) or None)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        return self.inputs_of_rows(self.rows(theta), len(theta))

    def inputs_of_rows(self, values, n):
        """:meth:`inputs` from the result of :meth:`rows` for ``n`` rows (no transform redone)."""
        x = np.empty((n, len(self.sources)))
        flat = {name: np.asarray(v, dtype=float).reshape(n, -1) for name, v in values.items()}
        for j, (base, i) in enumerate(self.sources):
            x[:, j] = flat[base][:, i]
        if self.log_inputs.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                x[:, self.log_inputs] = np.log10(x[:, self.log_inputs])
        if not self.has_lumdist:
            return x, None, None
        return x, flat["zred"][:, 0], flat["lumdist"][:, 0]
