"""The output-root lock: one run at a time, freed however the holder ends."""

import subprocess
import sys
import textwrap

import pytest

from pipeline import run_lock


def _hold_in_child(output_root):
    """A child process that takes the lock, says so, and waits for stdin to close."""
    code = textwrap.dedent(
        f"""
        import sys
        from pipeline import run_lock
        with run_lock.hold({str(output_root)!r}):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_run_is_refused_while_the_first_holds_the_root(tmp_path):
    child = _hold_in_child(tmp_path)
    try:
        with pytest.raises(run_lock.OutputRootBusyError, match=f"pid {child.pid}"):
            with run_lock.hold(str(tmp_path)):
                pass
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    with run_lock.hold(str(tmp_path)):  # free once the first run ended
        pass


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    child = _hold_in_child(tmp_path)
    child.kill()
    child.wait(timeout=30)
    with run_lock.hold(str(tmp_path)):
        pass


def test_a_second_hold_in_the_same_process_is_refused_too(tmp_path):
    with run_lock.hold(str(tmp_path)):
        with pytest.raises(run_lock.OutputRootBusyError):
            with run_lock.hold(str(tmp_path)):
                pass
