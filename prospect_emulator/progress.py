"""A one-line progress report for long jobs (generation, training, catalogue fits)."""
import collections
import math
import sys
import time

__all__ = ["Progress", "format_duration"]


def format_duration(seconds):
    """``h:mm:ss`` (or ``m:ss``); ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """One status line on stderr: done/total, rate, ETA, failures.

    The rate is measured over the last ``window`` seconds, so start-up (say,
    workers building their SPS) does not drag it down for long.  On a
    terminal the line is rewritten in place; otherwise a line is printed
    every ``interval`` seconds.

    Parameters
    ----------
    total : int
        Items in the whole job (including those done by earlier runs).
    already_done : int
        Items finished before this run (a resumed job).
    label, unit : str
        E.g. ``"generate"``, ``"models"``.
    remaining : bool
        Also say how many items are left (``| remaining N``), and on a
        terminal draw a bar.

    Attributes
    ----------
    failed : int
        Failed items so far (set by the caller; shown on the line).
    """

    def __init__(self, total, already_done=0, label="progress", unit="items", enabled=True,
                 stream=None, interval=None, window=60.0, remaining=False):
        self.total, self.already_done = total, already_done
        self.label, self.unit = label, unit
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self.window = window
        self._samples = collections.deque([(time.perf_counter(), 0)])
        self._last = -math.inf
        self._width = 0
        self.failed = 0
        self.remaining = remaining

    def _record(self, computed):
        now = time.perf_counter()
        if computed != self._samples[-1][1] and now - self._samples[-1][0] > 0.2:
            self._samples.append((now, computed))
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window:
            self._samples.popleft()
        return now

    def rate(self, computed):
        """Items per second over the recent window."""
        now = self._record(computed)
        t0, c0 = self._samples[0]
        if computed > c0 and len(self._samples) > 2:
            # from the first progress after the window start: excludes idle start-up
            t0, c0 = self._samples[1]
        return (computed - c0) / (now - t0) if now > t0 and computed > c0 else 0.0

    def line(self, computed):
        done = min(self.already_done + computed, self.total)
        rate = self.rate(computed)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        pct = 100.0 * done / self.total if self.total else 100.0
        bar = ""
        if self.remaining and self.tty:  # a bar on a terminal; log files get plain lines
            filled = int(20 * done / self.total) if self.total else 20
            bar = "[" + "#" * filled + "-" * (20 - filled) + "] "
        text = (f"{self.label}: {bar}{done}/{self.total} {self.unit} ({pct:.1f}%) | "
                f"{rate:.3g} {self.unit}/s | ETA {format_duration(eta)} | failed {self.failed}")
        if self.remaining:
            text += f" | remaining {self.total - done}"
        return text

    def update(self, computed, force=False):
        """Report ``computed`` items done by this run (rate-limited unless ``force``)."""
        if not self.enabled:
            return
        now = self._record(computed)
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = self.line(computed)
        if self.tty:  # overwrite the previous line, padding over a longer one
            print("\r" + text.ljust(self._width), end="", file=self.stream, flush=True)
            self._width = len(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self, computed):
        if self.enabled:
            self.update(computed, force=True)
            if self.tty:
                print(file=self.stream, flush=True)
