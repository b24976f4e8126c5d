"""Dask worker plugins of the clusters :mod:`prospect_emulator.fitting.executor` starts
(a module of its own so that importing the executor does not import distributed)."""
import contextlib
import os
import sys

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["ExitWhenClosed"]


class ExitWhenClosed(WorkerPlugin):
    """A closing worker process exits at once.

    Without it, Python's clean-up of the thousands of modules a fit imports
    takes seconds, after which the nanny kills the process anyway (with a
    warning).  A fit still running in the worker (the command was
    interrupted) stops with it.  Only for workers the executor started.
    """

    def teardown(self, worker):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)
