"""The run's console lines, and what goes to the log instead of the terminal."""

import io
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline import console


def _console(tmp_path, interactive=False):
    log = console.open_log(str(tmp_path))
    con = console.Console(io.StringIO(), io.StringIO(), log.fd, log.path, interactive)
    return con, log


def _events(con):
    """A logger whose records reach the console as TFX's reach the root logger."""
    logger = logging.getLogger(f"fake_tfx_{id(con)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(console._ComponentEvents(con))  # pylint: disable=protected-access
    return logger


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize(
    "seconds, text",
    [(0.04, "0.0s"), (4.25, "4.2s"), (59.9, "59.9s"), (65, "1m 05s"), (3725, "1h 02m")],
)
def test_format_seconds(seconds, text):
    assert console.format_seconds(seconds) == text


def test_a_line_as_each_component_starts_and_ends(tmp_path):
    con, log = _console(tmp_path)
    con.expect(["ExampleGen", "latest_blessed_model_resolver", "Trainer"])
    tfx = _events(con)
    tfx.info(console.RUNNING, "ExampleGen")
    tfx.info("Using deployment config:\n executor_specs {...}")  # not an event
    tfx.info(console.CACHED, 17)
    tfx.info(console.FINISHED, "ExampleGen")
    tfx.info(console.SKIPPING, "latest_blessed_model_resolver")
    tfx.info(console.RUNNING, "Trainer")
    tfx.info(console.FINISHED, "Trainer")
    con.pipeline_finished()
    lines = con.out.getvalue().splitlines()
    assert [line.split()[:3] for line in lines[:-1]] == [
        ["[1/3]", "ExampleGen", "running"],
        ["[1/3]", "ExampleGen", "cached"],
        ["[2/3]", "latest_blessed_model_resolver", "skipped"],
        ["[3/3]", "Trainer", "running"],
        ["[3/3]", "Trainer", "done"],
    ]
    assert lines[1].endswith("s") and lines[4].endswith("s")  # the wall times
    # Names aligned, whatever their length.
    assert len({line.index(" running") for line in lines if "running" in line}) == 1
    assert lines[-1].startswith("Pipeline finished in ") and "(3 components, 1 cached)" in lines[-1]
    assert con.err.getvalue() == ""
    assert con.detail_indent == " " * len("[3/3] ")
    # Every console line is in the log too.
    assert _read(log.path).splitlines() == lines
    os.close(log.fd)


def test_a_failed_component_prints_its_name_the_first_line_and_the_log(tmp_path):
    con, log = _console(tmp_path)
    con.expect([f"c{i}" for i in range(12)])
    con.component_started("Transform")
    try:
        raise ValueError("the vocabulary is empty\n  a long second line\n  and a third")
    except ValueError as e:
        con.failed(e)
    assert con.out.getvalue().splitlines()[-1].split()[:3] == ["[", "1/12]", "Transform"]
    assert " failed " in con.out.getvalue().splitlines()[-1]
    assert con.err.getvalue().splitlines() == [
        "error: Transform failed: ValueError: the vocabulary is empty",
        f"full log: {log.path}",
    ]
    text = _read(log.path)
    assert "Traceback (most recent call last)" in text and "a long second line" in text
    os.close(log.fd)


def test_a_message_for_the_user_is_printed_whole_and_without_a_component_when_none_ran(tmp_path):
    con, log = _console(tmp_path)
    con.failed(RuntimeError("The input data does not match.\n  split 'train': new column"), True)
    assert con.err.getvalue().splitlines() == [
        "error: The input data does not match.",
        "  split 'train': new column",
        f"full log: {log.path}",
    ]
    os.close(log.fd)


def test_an_open_progress_line_is_ended_before_the_next_line(tmp_path):
    con, log = _console(tmp_path, interactive=True)
    ended = []
    con.out.write("\r  epoch 1/3 |###   |")
    con.hold_line(lambda: ended.append(con.out.write("\n")))
    con.component_started("Trainer")
    con.print("next")
    assert ended == [1]
    assert con.out.getvalue().splitlines()[-2:] == ["[1] Trainer  running", "next"]
    os.close(log.fd)


def test_log_files_do_not_overwrite_each_other(tmp_path):
    first = console.open_log(str(tmp_path))
    second = console.open_log(str(tmp_path))
    assert first.path != second.path
    assert os.path.dirname(first.path) == str(tmp_path / console.LOG_DIR)
    for log in (first, second):
        os.close(log.fd)


def test_tfx_still_logs_the_messages_the_console_reads():
    import inspect

    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import launcher

    runner = inspect.getsource(local_dag_runner)
    for message in (console.RUNNING, console.FINISHED, console.SKIPPING):
        assert repr(message) in runner
    assert repr(console.CACHED) in inspect.getsource(launcher)


# A process that writes to fds 1 and 2 every way the libraries do, inside capture().
_CHILD = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    from pipeline import console

    print("before the run")
    with console.capture(console.open_log(sys.argv[1]), verbose=sys.argv[2] == "1") as con:
        con.print(f"Log: {con.log_path}")
        con.expect(["ExampleGen"])
        os.write(2, b"C++: Could not find cuda drivers\\n")
        print("a library's print")
        warnings.warn("the same FutureWarning", FutureWarning)
        logging.getLogger("absl").setLevel(logging.INFO)
        logging.getLogger("absl").info("Component %s is running.", "ExampleGen")
        logging.getLogger("absl").info("executor_specs {")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child process\\\\n')"])
        logging.getLogger("absl").info("Component %s is finished.", "ExampleGen")
        con.print("the summary")
        con.error("error: a line for stderr")
    print("after the run")
    """
)


def _run_child(tmp_path, verbose):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(console.__file__)))
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), "1" if verbose else "0"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (log_name,) = os.listdir(tmp_path / console.LOG_DIR)
    return result, _read(tmp_path / console.LOG_DIR / log_name)


LIBRARY_OUTPUT = (
    "C++: Could not find cuda drivers",
    "a library's print",
    "FutureWarning: the same FutureWarning",
    "executor_specs {",
    "child process",
)


def test_library_output_goes_to_the_log_and_the_console_gets_its_lines(tmp_path):
    result, log = _run_child(tmp_path, verbose=False)
    lines = result.stdout.splitlines()
    assert lines[0] == "before the run" and lines[-1] == "after the run"
    assert lines[1].startswith("Log: ")
    assert [line.split()[1:3] for line in lines[2:4]] == [
        ["ExampleGen", "running"],
        ["ExampleGen", "done"],
    ]
    assert lines[4:-1] == ["the summary"]
    assert result.stderr == "error: a line for stderr\n"
    for text in LIBRARY_OUTPUT:
        assert text in log and text not in result.stdout + result.stderr
    assert "the summary" in log and "error: a line for stderr" in log
    assert "before the run" not in log and "after the run" not in log
    # Not a terminal: one line per event, no carriage return or escape sequence.
    assert "\r" not in result.stdout and "\x1b" not in result.stdout


def test_verbose_streams_the_library_output_as_well(tmp_path):
    result, log = _run_child(tmp_path, verbose=True)
    for text in LIBRARY_OUTPUT:
        assert text in log and text in result.stdout + result.stderr
    assert "a library's print" in result.stdout and "child process" in result.stderr
    assert "the summary" in result.stdout and "error: a line for stderr" in result.stderr
    assert "ExampleGen" in result.stdout and result.stdout.splitlines()[-1] == "after the run"
