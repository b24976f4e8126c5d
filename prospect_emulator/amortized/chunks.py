"""One chunk of a catalogue's amortized posteriors: the task, its file, its resume check.

A catalogue is cut into chunks of objects; each chunk is one task
(:func:`sample_chunk`), run in-process or by a
:class:`~prospect_emulator.fitting.executor.Executor` (Dask).  The task samples
the chunk's posteriors, computes the derived quantities of the draws, and
writes ``chunk-<k>.h5`` atomically (complete or absent): the draws, the derived
quantities and the summary rows (JSON).  A chunk file whose recorded inputs
(posterior file checksum, seed, draws, the chunk's objects) match is reused
by the next run, so an interrupted catalogue resumes without losing or
redoing finished chunks.
"""
import hashlib
import json
import os
import socket

import numpy as np

from ..errors import EmulatorFileError
from ..fileio import atomic_path

__all__ = ["sample_chunk", "chunk_key", "read_chunk", "CHUNK_FORMAT"]

#: ``format`` attribute of a chunk file.
CHUNK_FORMAT = "prospect-emulator-amortized-chunk"

#: Per worker process: the posterior of the running catalogue (checked by checksum).
_WORKER_POSTERIOR = {}


def chunk_key(obs, seed, n_samples, n_derived, posterior_sha256, importance_draws=None):
    """Hash of everything a chunk's result depends on (hex string)."""
    h = hashlib.sha256()
    settings = [posterior_sha256, int(seed), int(n_samples), int(n_derived),
                list(obs.filter_names), list(obs.ids)]
    if importance_draws is not None:
        settings.append(["importance_draws", int(importance_draws)])
    h.update(json.dumps(settings).encode())
    for arr in (obs.maggies, obs.maggies_unc, obs.zred):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def _posterior(ref):
    """The posterior of a reference: an AmortizedPosterior (in-process) or a file."""
    from .posterior import AmortizedPosterior
    if isinstance(ref, AmortizedPosterior):
        return ref
    from ..fitting.results import file_sha256
    key = (ref["path"], ref["sha256"], ref.get("emulator"))
    if key not in _WORKER_POSTERIOR:
        found = file_sha256(ref["path"])
        if found != ref["sha256"]:
            raise EmulatorFileError(
                f"the posterior file {ref['path']} on host {socket.gethostname()} has checksum "
                f"{found[:12]}..., but the run started with {ref['sha256'][:12]}...: every "
                "worker must read the same file")
        _WORKER_POSTERIOR.clear()
        _WORKER_POSTERIOR[key] = AmortizedPosterior.load(ref["path"], emulator=ref.get("emulator"))
    return _WORKER_POSTERIOR[key]


def sample_chunk(obs, posterior_ref, path, seed, n_samples, n_derived, key,
                 importance_draws=None):
    """Sample one chunk's posteriors and write its file; the task of an amortized catalogue.

    Parameters
    ----------
    obs : Observations
        The chunk's objects.
    posterior_ref : AmortizedPosterior or dict
        The posterior, or ``{"path", "sha256", "emulator"}`` of its file (a
        worker loads it once and checks the checksum).
    path : str
        The chunk file to write (``chunk-<k>.h5``).
    seed : int
        Seed of this chunk's draws.
    n_samples, n_derived : int
        Draws per object; how many of them get derived quantities.
    key : str
        :func:`chunk_key` of the inputs, stored in the file for resuming.
    importance_draws : int, optional
        Flow draws per object reweighted by the exact likelihood
        (:meth:`AmortizedPosterior.sample`); default: the flow's own draws.

    Returns
    -------
    dict
        ``rows`` (one summary row per object, JSON-able) and ``derived_names``.
    """
    from .catalog import derived_samples, summary_row
    posterior = _posterior(posterior_ref)
    result = posterior.sample(obs, n_samples, seed=seed, on_bad="flag",
                              importance_draws=importance_draws)
    derived = []
    for i in range(len(obs)):
        draws = result.samples[i, :n_derived]
        derived.append(derived_samples(posterior.model, posterior._band_emulator, draws)
                       if result.status[i] == "ok" else None)
    names = next((list(d) for d in derived if d is not None), [])
    rows = [summary_row(result, i, derived[i], names) for i in range(len(obs))]
    with atomic_path(path, suffix=f".partial-{os.getpid()}") as tmp:
        import h5py
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHUNK_FORMAT
            f.attrs["key"] = key
            f.attrs["rows"] = json.dumps(rows, allow_nan=True)
            f.attrs["derived_names"] = json.dumps(names)
            f["samples"] = result.samples
            g = f.create_group("derived")
            for name in names:
                g[name] = np.array([d[name] if d is not None else np.full(n_derived, np.nan)
                                    for d in derived], dtype=float).reshape(len(obs), n_derived)
    return {"rows": rows, "derived_names": names}


def read_chunk(path, key):
    """The result of a finished chunk file whose inputs match ``key``, else None."""
    import h5py
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHUNK_FORMAT or f.attrs.get("key") != key:
                return None
            return {"rows": json.loads(f.attrs["rows"]),
                    "derived_names": json.loads(f.attrs["derived_names"])}
    except (OSError, KeyError, ValueError):  # a foreign or damaged file: sampled again
        return None
