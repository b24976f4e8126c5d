"""The one-line progress report of long jobs (generate, fit)."""
import io

from prospect_emulator.progress import Progress, format_duration


class TerminalStream(io.StringIO):
    def isatty(self):
        return True


def test_durations_read_as_clock_times():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3 * 3600 + 5 * 60 + 7) == "3:05:07"
    assert format_duration(float("inf")) == "?"


def test_a_line_per_update_counts_done_total_rate_eta_and_failures():
    stream = io.StringIO()
    bar = Progress(100, already_done=40, label="generate", unit="models", stream=stream,
                   interval=0)
    bar.update(10)
    bar.failed = 2
    bar.close(60)
    first, *_, last = stream.getvalue().splitlines()
    assert first.startswith("generate: 50/100 models (50.0%) | ")
    assert last.startswith("generate: 100/100 models (100.0%) | ") and "models/s | ETA" in last
    assert last.endswith("| failed 2")


def test_updates_are_rate_limited_unless_forced():
    stream = io.StringIO()
    bar = Progress(10, stream=stream, interval=3600)
    bar.update(1)
    bar.update(2)
    bar.update(3, force=True)
    assert len(stream.getvalue().splitlines()) == 2


def test_on_a_terminal_the_line_is_rewritten_in_place():
    stream = TerminalStream()
    bar = Progress(10, label="fit", unit="objects", stream=stream, interval=0)
    bar.failed = 12345
    bar.update(1)
    long_width = len(stream.getvalue()) - 1
    bar.failed = 0                        # a shorter line pads over the longer one
    bar.update(2)
    second = stream.getvalue()[long_width + 1:]
    assert second.startswith("\r") and len(second) - 1 == long_width
    assert "\n" not in stream.getvalue()
    bar.close(10)
    text = stream.getvalue()
    final = text.rsplit("\r", 1)[1]
    assert text.endswith("\n") and final.startswith("fit: 10/10 objects (100.0%)")
    assert final.rstrip().endswith("failed 0")
