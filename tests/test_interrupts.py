"""Stop signals: raised where the code can stop cleanly, never lost."""
import os
import signal

import pytest

from prospect_emulator.interrupts import stop_at_safe_points, terminate_as_interrupt


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_waits_for_the_next_safe_point(signum):
    steps = []
    with pytest.raises(KeyboardInterrupt, match=f"signal {signal.Signals(signum).name}"):
        with stop_at_safe_points() as stop:
            os.kill(os.getpid(), signum)
            steps.append("work after the signal")   # not interrupted mid-step
            stop.raise_if_asked()
            steps.append("never reached")
    assert steps == ["work after the signal"]


def test_a_stop_not_yet_raised_is_raised_when_the_block_ends():
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in stops}
    with pytest.raises(KeyboardInterrupt, match="signal SIGTERM"):
        with stop_at_safe_points():
            assert all(signal.getsignal(sig) is not before[sig] for sig in stops)
            os.kill(os.getpid(), signal.SIGTERM)
    # the handlers of before the block are back
    assert {sig: signal.getsignal(sig) for sig in stops} == before


def test_without_a_signal_the_block_runs_to_its_end():
    with stop_at_safe_points() as stop:
        stop.raise_if_asked()
    assert stop.signal_name is None


def test_kill_and_hangup_raise_like_ctrl_c_inside_terminate_as_interrupt():
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(KeyboardInterrupt, match="signal SIGHUP"):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGHUP)
    assert signal.getsignal(signal.SIGHUP) == before
