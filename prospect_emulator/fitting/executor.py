"""Where catalogue fits run: the package's executor interface and its Dask implementation.

The catalogue code (:mod:`prospect_emulator.fitting.catalog`) talks only to
:class:`Executor`: submit one task per object, take the outcomes as they
complete, shut down.  :class:`DaskExecutor` runs the tasks on Dask
distributed, in one of three set-ups:

* :meth:`DaskExecutor.local`: an embedded ``distributed.LocalCluster`` with
  one single-threaded worker process per core, started and stopped with the
  executor (nothing to set up);
* :meth:`DaskExecutor.connect`: an existing Dask cluster (``dask scheduler`` +
  ``dask worker``), by address or scheduler file;
* :meth:`DaskExecutor.slurm`: workers started as SLURM jobs through
  ``dask_jobqueue.SLURMCluster``.

A worker that dies (killed, out of memory, node lost) has its task
rescheduled by Dask's scheduler on another worker; after ``attempts`` tries
the outcome is a failure whose reason is Dask's ``KilledWorker``.  A task that
raises is retried by Dask (``retries=attempts - 1``) and then reported as a
failure with the exception.  Nothing here knows about galaxies.
"""
import abc
import contextlib
import itertools
import os
import time
import uuid

from ..errors import EmulatorConfigurationError
from ..interrupts import terminate_as_interrupt

__all__ = ["Executor", "DaskExecutor", "Outcome", "terminate_as_interrupt", "DEFAULT_ATTEMPTS",
           "usable_cpu_count"]

#: Tries of one task (first run + reschedules after dead workers or errors).
DEFAULT_ATTEMPTS = 3


def usable_cpu_count():
    """CPU cores this process may use (its affinity mask where the OS has one,
    else all cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Outcome:
    """What became of one task.

    Attributes
    ----------
    key : str
        The key the task was submitted under.
    value : object
        The task's return value (``None`` if it failed).
    error : str or None
        Why the task failed after all its attempts (``"KilledWorker: ..."``
        for workers that died), or ``None``.
    """

    __slots__ = ("key", "value", "error")

    def __init__(self, key, value=None, error=None):
        self.key, self.value, self.error = key, value, error

    @property
    def ok(self):
        return self.error is None

    def __repr__(self):
        return f"Outcome({self.key!r}, {'ok' if self.ok else self.error!r})"


class Executor(abc.ABC):
    """Runs independent tasks somewhere and hands back their outcomes.

    Use as a context manager: leaving the block (also by an exception or
    Ctrl-C) shuts the executor down, stopping the workers it started.
    """

    #: One line saying where the tasks run (for the log).
    description = ""
    #: Web address of a live dashboard, or None.
    dashboard_link = None
    #: Tries of one task before it is reported failed.
    attempts = DEFAULT_ATTEMPTS

    @abc.abstractmethod
    def submit(self, key, fn, *args):
        """Start ``fn(*args)`` as a task named ``key``; returns a handle for
        :meth:`as_completed`."""

    @abc.abstractmethod
    def as_completed(self, handles):
        """Iterate over :class:`Outcome` s in completion order.

        The returned iterator has ``add(handle)``, to feed it new tasks while
        iterating.
        """

    @abc.abstractmethod
    def shutdown(self):
        """Stop the workers this executor started (a shared cluster is left running)."""

    @property
    def n_workers(self):
        """Worker slots now available (one task each); at least 1."""
        return 1

    def run_unordered(self, fn, items, window=None):
        """``fn(*args)`` for every ``(key, args)`` of ``items``; :class:`Outcome` s as they
        complete.

        At most ``window`` tasks are in flight (default: 4 per worker slot,
        at least 16), so a catalogue of 10^9 objects is streamed, never held
        by the scheduler all at once.
        """
        items = iter(items)

        def wanted():  # grows as workers join (SLURM jobs start one by one)
            return window if window is not None else max(4 * self.n_workers, 16)

        first = [self.submit(key, fn, *args) for key, args in itertools.islice(items, wanted())]
        if not first:
            return
        in_flight = len(first)
        queue = self.as_completed(first)
        for outcome in queue:
            in_flight -= 1
            for key, args in itertools.islice(items, max(wanted() - in_flight, 1)):
                queue.add(self.submit(key, fn, *args))
                in_flight += 1
            yield outcome

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


class _DaskCompletion:
    """Outcomes of Dask futures in completion order (``distributed.as_completed``)."""

    def __init__(self, executor, futures):
        from distributed import as_completed
        self._executor = executor
        self._queue = as_completed(futures)

    def add(self, future):
        self._queue.add(future)

    def __iter__(self):
        for future in self._queue:
            yield self._executor._outcome(future)


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster.

    Build one with :meth:`local`, :meth:`connect` or :meth:`slurm`, or wrap a
    ``distributed.Client`` yourself.

    Parameters
    ----------
    client : distributed.Client
    cluster : distributed.deploy.Cluster, optional
        A cluster this executor started and closes at :meth:`shutdown`.
    attempts : int
        Tries of each task: ``retries=attempts - 1`` for tasks that raise.
        Reschedules after a worker died are counted by the scheduler
        (``distributed.scheduler.allowed-failures``, set to ``attempts - 1``
        for the clusters this class starts; an existing cluster keeps its
        own setting, see :attr:`attempts`).
    description : str
    """

    def __init__(self, client, cluster=None, attempts=DEFAULT_ATTEMPTS, description="",
                 expected_workers=0):
        self.client, self.cluster = client, cluster
        self.expected_workers = int(expected_workers)
        self._counted = (-1e9, 0)
        self.attempts = _check_attempts(attempts)
        self.description = description or f"Dask cluster at {client.scheduler.address}"
        self._run = uuid.uuid4().hex[:8]  # keys unique on a scheduler shared between runs
        self._closed = False

    # ------------------------------------------------------------ set-ups
    @classmethod
    def local(cls, n_workers=None, attempts=DEFAULT_ATTEMPTS, processes=True,
              dashboard_address=":8787", memory_limit="auto"):
        """An embedded ``LocalCluster``: ``n_workers`` single-threaded processes.

        Parameters
        ----------
        n_workers : int, optional
            Worker processes (default: one per core this process may use,
            :func:`usable_cpu_count`).
        attempts : int
        processes : bool
            Worker processes (True, the default: a fit holds the GIL) or
            threads of this process (for tests that patch the code).
        dashboard_address : str
            Where the dashboard listens (``":8787"``; another free port if
            taken; ``":0"`` any free port).
        memory_limit : str or float
            Per worker; a worker above it is restarted and its task
            rescheduled (Dask's default ``"auto"``: the machine's memory
            divided among the workers).
        """
        import dask
        from distributed import Client, LocalCluster
        n_workers = _positive_int(n_workers or usable_cpu_count(), "--workers")
        attempts = _check_attempts(attempts)
        with dask.config.set({"distributed.scheduler.allowed-failures": attempts - 1}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                                   dashboard_address=dashboard_address,
                                   memory_limit=memory_limit)
        try:
            client = Client(cluster)
            if processes:  # (a worker thread must not end this process)
                _register_exit_plugin(client)
        except BaseException:
            cluster.close()
            raise
        kind = "processes x 1 thread" if processes else "threads in this process"
        return cls(client, cluster, attempts, f"local Dask cluster: {n_workers} worker {kind}")

    @classmethod
    def connect(cls, address, attempts=DEFAULT_ATTEMPTS, timeout=30):
        """An existing Dask cluster: ``tcp://host:8786`` or a scheduler file (JSON).

        The cluster is left running at :meth:`shutdown`.  Its scheduler's own
        ``allowed-failures`` decides how often a task is rescheduled after a
        worker died (:attr:`attempts` reports it).
        """
        from distributed import Client
        attempts = _check_attempts(attempts)
        try:
            if os.path.isfile(address):
                client = Client(scheduler_file=address, timeout=timeout)
            else:
                client = Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as err:
            raise EmulatorConfigurationError(
                f"cannot connect to a Dask scheduler at {address!r} ({type(err).__name__}: {err}); "
                "give --scheduler tcp://HOST:PORT or the path of a scheduler file written by "
                "`dask scheduler --scheduler-file FILE`") from None
        executor = cls(client, None, attempts, f"Dask cluster at {client.scheduler.address}")
        with contextlib.suppress(Exception):
            allowed = client.run_on_scheduler(_allowed_failures)
            executor.attempts = min(attempts, int(allowed) + 1)
        return executor

    @classmethod
    def slurm(cls, cores=None, memory=None, walltime=None, jobs=1, attempts=DEFAULT_ATTEMPTS,
              **jobqueue_kwargs):
        """Workers as SLURM jobs: ``jobs`` jobs of ``cores`` single-threaded worker processes.

        Settings left ``None`` come from the dask-jobqueue configuration
        (``~/.config/dask/jobqueue.yaml``, section ``jobqueue.slurm``).  The
        jobs are cancelled at :meth:`shutdown`.  See :func:`slurm_cluster`.
        """
        attempts = _check_attempts(attempts)
        jobs = _positive_int(jobs, "--jobs")
        cluster = slurm_cluster(cores, memory, walltime, attempts=attempts, **jobqueue_kwargs)
        from distributed import Client
        try:
            cluster.scale(jobs=jobs)
            client = Client(cluster)
            _register_exit_plugin(client)
        except BaseException:
            cluster.close()
            raise
        return cls(client, cluster, attempts,
                   f"SLURM via dask-jobqueue: {jobs} job(s), one single-threaded worker "
                   "process per core", expected_workers=jobs * _processes_per_job(cluster))

    # ------------------------------------------------------------ interface
    def submit(self, key, fn, *args):
        return self.client.submit(fn, *args, key=f"{key}-{self._run}", pure=False,
                                  retries=self.attempts - 1)

    def as_completed(self, handles):
        return _DaskCompletion(self, handles)

    def _outcome(self, future):
        key = future.key[:-len(self._run) - 1]
        if future.status == "finished":
            try:
                return Outcome(key, value=future.result())
            except Exception as err:  # lost between finishing and fetching
                return Outcome(key, error=_reason(err))
        try:
            err = future.exception()
        except Exception as exc:  # cancelled: the scheduler forgot it
            err = exc
        return Outcome(key, error=_reason(err))

    @property
    def n_workers(self):
        """Worker threads on the scheduler now, or those expected (queued SLURM jobs);
        asked of the scheduler at most once a second."""
        now = time.monotonic()
        if now - self._counted[0] > 1.0:
            try:
                info = self.client.scheduler_info()
                threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
            except Exception:
                threads = self._counted[1]
            self._counted = (now, threads)
        return max(self._counted[1], self.expected_workers, 1)

    @property
    def dashboard_link(self):
        try:
            if "dashboard" in (self.client.scheduler_info().get("services") or {}):
                return self.client.dashboard_link
        except Exception:
            pass
        return None

    def shutdown(self):
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()

    def worker_pids(self):
        """``{worker address: process id}`` of the workers now running."""
        return self.client.run(os.getpid)


def slurm_cluster(cores=None, memory=None, walltime=None, attempts=DEFAULT_ATTEMPTS,
                  **jobqueue_kwargs):
    """A ``dask_jobqueue.SLURMCluster`` of one single-threaded worker process per core.

    No job is submitted until the cluster is scaled
    (``cluster.scale(jobs=N)``); ``cluster.job_script()`` shows the batch
    script each job would run.

    Parameters
    ----------
    cores : int, optional
        Cores per job (= worker processes per job).
    memory : str, optional
        Memory per job, e.g. ``"16GB"``.
    walltime : str, optional
        Per job, ``"HH:MM:SS"``.
    attempts : int
        Tries of a task whose worker dies (``allowed-failures``).
    **jobqueue_kwargs
        More ``SLURMCluster`` settings (``queue``, ``account``,
        ``job_extra_directives``, ``local_directory``, ...).

    Raises
    ------
    EmulatorConfigurationError
        dask-jobqueue is not installed, or cores/memory are neither given nor
        configured.
    """
    import dask
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise EmulatorConfigurationError(
            "--slurm needs dask-jobqueue: pip install 'prospect-emulator[cluster]'") from None
    cores = cores if cores is not None else dask.config.get("jobqueue.slurm.cores", None)
    memory = memory if memory is not None else dask.config.get("jobqueue.slurm.memory", None)
    if cores is None or memory is None:
        raise EmulatorConfigurationError(
            "--slurm needs the cores and memory of one job: give --cores N --memory SIZE "
            "(e.g. --cores 32 --memory 64GB), or set jobqueue.slurm.cores/memory in a "
            "dask-jobqueue configuration file (~/.config/dask/jobqueue.yaml)")
    cores = _positive_int(cores, "--cores")
    kwargs = dict(jobqueue_kwargs)
    if walltime is not None:
        kwargs["walltime"] = walltime
    with dask.config.set({"distributed.scheduler.allowed-failures": _check_attempts(attempts) - 1}):
        # processes=cores: one single-threaded worker process per core (a fit holds the GIL)
        return SLURMCluster(cores=cores, processes=cores, memory=memory, **kwargs)


def _register_exit_plugin(client):
    from ._dask_plugins import ExitWhenClosed
    client.register_plugin(ExitWhenClosed(), name="prospect-emulator-exit")


def _processes_per_job(cluster):
    return int(getattr(getattr(cluster, "_dummy_job", None), "worker_processes", 1) or 1)


def _allowed_failures(dask_scheduler=None):
    return dask_scheduler.allowed_failures


def _reason(err):
    if err is None:
        return "unknown error (the task ended without a result)"
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _positive_int(value, option):
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise EmulatorConfigurationError(f"{option} must be a whole number >= 1, got {value!r}")
    return number


def _check_attempts(attempts):
    return _positive_int(attempts, "--attempts")
