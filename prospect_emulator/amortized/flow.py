"""The normalizing flow of an amortized posterior: built from hyperparameters, stored as arrays.

A flow is never pickled.  Its architecture is rebuilt from a small dict of
hyperparameters (:func:`build_flow`), and its weights are the array leaves of
the equinox module in JAX's fixed flattening order (:func:`flow_arrays`,
:func:`flow_with_arrays`), each written as one HDF5 dataset.
"""
import jax
import jax.numpy as jnp
import equinox as eqx
import numpy as np

from ..errors import EmulatorFileError

__all__ = ["DEFAULT_HYPERPARAMETERS", "build_flow", "flow_arrays", "flow_with_arrays",
           "resolved_hyperparameters", "trainable_filter"]

#: Flow architecture.  ``kind``: "coupling" (RQS coupling flow: one network
#: pass to sample *and* to evaluate densities; the default, since sampling a
#: whole catalogue must be fast) or "maf" (masked autoregressive flow as in
#: SEDflow; fast densities, sampling needs one pass per parameter).  The splines'
#: knots set most of the sampling cost (``benchmarks/bench_flow_architecture.py``):
#: 4 knots draw 1.38x faster than 8 with the same pooled coverage.
#: ``invert`` is flowjax's: which direction of the bijection is the cheap one.
#: ``False`` makes the splines' forward evaluation draw the samples: a coupling
#: flow then samples 1.3-1.5x faster (``benchmarks/bench_flow_architecture.py``;
#: whole catalogues, ``benchmarks/bench_amortized_sampling.py``: docs/limitations.md)
#: and evaluates densities at about the same cost (training the posterior of
#: docs/amortized.md took 41 min, within the hour of issue 12); ``True`` (flowjax's
#: default) draws through the splines' inverse.  ``None`` chooses by kind:
#: ``False`` for "coupling", ``True`` for "maf" (whose other direction needs
#: one network pass per parameter to evaluate a density, as
#: training does).  The width is that of the validated posterior (docs/amortized.md).
DEFAULT_HYPERPARAMETERS = {"kind": "coupling", "flow_layers": 8, "nn_width": 96, "nn_depth": 2,
                           "knots": 4, "interval": 5.0, "invert": None}

#: ``invert`` of files written before it was a hyperparameter (flowjax's default then).
INVERT_BEFORE_IT_WAS_STORED = True


def resolved_hyperparameters(hyper):
    """``hyper`` over :data:`DEFAULT_HYPERPARAMETERS`, with ``invert`` decided.

    Parameters
    ----------
    hyper : dict
        Any of the keys of :data:`DEFAULT_HYPERPARAMETERS`.

    Returns
    -------
    dict
        Every key; ``invert`` a bool (what a posterior file stores).

    Raises
    ------
    ValueError
        An unknown key or flow kind.
    """
    unknown = sorted(set(hyper) - set(DEFAULT_HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"unknown flow hyperparameter(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(DEFAULT_HYPERPARAMETERS)}")
    out = dict(DEFAULT_HYPERPARAMETERS, **hyper)
    if out["kind"] not in ("coupling", "maf"):
        raise ValueError(f"flow kind {out['kind']!r}; allowed: coupling, maf")
    if out["invert"] is None:
        out["invert"] = out["kind"] == "maf"
    out["invert"] = bool(out["invert"])
    return out


def build_flow(hyper, dim, cond_dim, key=0):
    """A flowjax flow for ``dim`` parameters conditioned on ``cond_dim`` numbers.

    Parameters
    ----------
    hyper : dict
        :data:`DEFAULT_HYPERPARAMETERS`-like (:func:`resolved_hyperparameters`).
    dim, cond_dim : int
    key : int
        Seed of the initial weights.
    """
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow
    hyper = resolved_hyperparameters(hyper)
    builders = {"coupling": coupling_flow, "maf": masked_autoregressive_flow}
    return builders[hyper["kind"]](
        jax.random.key(int(key)), base_dist=Normal(jnp.zeros(int(dim))),
        transformer=RationalQuadraticSpline(knots=int(hyper["knots"]),
                                            interval=float(hyper["interval"])),
        cond_dim=int(cond_dim), flow_layers=int(hyper["flow_layers"]),
        nn_width=int(hyper["nn_width"]), nn_depth=int(hyper["nn_depth"]),
        invert=hyper["invert"])


def trainable_filter(flow):
    """(trainable arrays, the rest) as flowjax's ``fit_to_data`` splits them."""
    import paramax
    return eqx.partition(flow, eqx.is_inexact_array,
                         is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))


def flow_arrays(tree):
    """The array leaves of a flow (or any pytree), as NumPy arrays, in JAX's order."""
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def flow_with_arrays(skeleton, arrays, what="flow"):
    """``skeleton`` with its array leaves replaced by ``arrays`` (same order, shapes, dtypes).

    Raises
    ------
    EmulatorFileError
        The stored arrays do not fit the architecture (a different flowjax
        version, or hyperparameters that do not match the weights).
    """
    dynamic, static = eqx.partition(skeleton, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)
    if len(leaves) != len(arrays):
        raise EmulatorFileError(
            f"the stored {what} has {len(arrays)} weight arrays but the architecture rebuilt "
            f"from its hyperparameters has {len(leaves)} (written by another flowjax version?)")
    new = []
    for i, (leaf, arr) in enumerate(zip(leaves, arrays)):
        arr = np.asarray(arr)
        if leaf.shape != arr.shape or leaf.dtype != arr.dtype:
            raise EmulatorFileError(
                f"stored {what} array {i} has shape {arr.shape} {arr.dtype}, the rebuilt "
                f"architecture expects {leaf.shape} {leaf.dtype}")
        new.append(jnp.asarray(arr))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)
