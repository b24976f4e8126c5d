"""Signals that end a long run as cleanly as Ctrl-C.

``kill PID`` (SIGTERM, what ``scancel`` and batch systems send) and a closed
terminal (SIGHUP) are turned into ``KeyboardInterrupt`` inside
:func:`terminate_as_interrupt`, so ``with`` blocks unwind, finished work stays
on disk and the workers a run started are stopped.  Worker processes forked
inside the block inherit the handlers: :func:`restore_default_termination`
gives them back the default (die on SIGTERM), which pools rely on to stop them.
"""
import contextlib
import signal
import threading

__all__ = ["terminate_as_interrupt", "restore_default_termination", "TERMINATION_SIGNALS"]

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

    previous = {sig: signal.signal(sig, interrupt) for sig in TERMINATION_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def restore_default_termination():
    """In a forked worker: SIGTERM and SIGHUP end the process again.

    A worker that kept the parent's handlers would turn a pool's
    ``terminate()`` into an exception caught as its task's error, live on, and
    leave the pool waiting for it forever.
    """
    for sig in TERMINATION_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
