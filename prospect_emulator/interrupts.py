"""Signals that end a long run as cleanly as Ctrl-C.

``kill PID`` (SIGTERM, what ``scancel`` and batch systems send) and a closed
terminal (SIGHUP) are turned into ``KeyboardInterrupt`` inside
:func:`terminate_as_interrupt`, so ``with`` blocks unwind, finished work stays
on disk and the workers a run started are stopped.  Worker processes forked
inside the block inherit the handlers: :func:`restore_default_termination`
gives them back the default (die on SIGTERM), which pools rely on to stop them.

Code that waits on a pool of processes uses :func:`stop_at_safe_points`
instead: there a ``KeyboardInterrupt`` raised by a signal handler at an
arbitrary bytecode can land inside :mod:`concurrent.futures`' own locking
(``wait()`` takes every future's lock in a loop), leave a lock held, and the
pool's shutdown then waits for it forever.
"""
import contextlib
import signal
import threading

__all__ = ["terminate_as_interrupt", "stop_at_safe_points", "StopRequest",
           "restore_default_termination", "TERMINATION_SIGNALS"]

#: The signals :func:`terminate_as_interrupt` turns into ``KeyboardInterrupt``.
TERMINATION_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
                            if s is not None)


@contextlib.contextmanager
def terminate_as_interrupt():
    """Inside the block, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` like Ctrl-C.

    Outside the main thread nothing changes (Python delivers signals there only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    with _handled_by(interrupt, TERMINATION_SIGNALS):
        yield


@contextlib.contextmanager
def _handled_by(handler, signals):
    """Inside the block ``handler`` handles ``signals``; the previous handlers after it."""
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class StopRequest:
    """A stop asked for by a signal inside :func:`stop_at_safe_points`.

    Attributes
    ----------
    signal_name : str or None
        ``"SIGINT"``, ``"SIGTERM"`` or ``"SIGHUP"`` once one arrived, else ``None``.
    """

    def __init__(self):
        self.signal_name = None
        self.raised = False

    def raise_if_asked(self):
        """Raise ``KeyboardInterrupt("signal NAME")`` if a stop signal has arrived."""
        if self.signal_name is not None:
            self.raised = True
            raise KeyboardInterrupt(f"signal {self.signal_name}")


@contextlib.contextmanager
def stop_at_safe_points():
    """Inside the block Ctrl-C, SIGTERM and SIGHUP only record a stop.

    Yields a :class:`StopRequest`; the code raises the stop as
    ``KeyboardInterrupt`` where it is safe to (``stop.raise_if_asked()``:
    between waits on a pool, between models), and leaving the block raises a
    stop not raised yet.  Outside the main thread nothing is recorded (Python
    delivers signals there only) and the block runs as it is.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def record(signum, frame):
        if stop.signal_name is None:
            stop.signal_name = signal.Signals(signum).name

    with _handled_by(record, (signal.SIGINT,) + TERMINATION_SIGNALS):
        yield stop
    if not stop.raised:
        stop.raise_if_asked()


def restore_default_termination():
    """In a forked worker: SIGTERM and SIGHUP end the process again.

    A worker that kept the parent's handlers would turn a pool's
    ``terminate()`` into an exception caught as its task's error, live on, and
    leave the pool waiting for it forever.
    """
    for sig in TERMINATION_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
