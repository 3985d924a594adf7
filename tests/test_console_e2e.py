"""What a run prints by default, on success and on failure: the lines a person follows.

The runs' output goes to pipes, as in CI: no terminal, so no progress bar.
"""

import os
import re

import pytest

from conftest import run_local_runner
from conftest import write_synthetic_ratings

pytestmark = pytest.mark.slow

# A duration as console.format_seconds writes it: "12.3s", "1m 05s", "1h 02m".
DURATION = r"(?:\d+\.\ds|\d+m \d\ds|\d+h \d\dm)"
COMPONENT_LINE = re.compile(
    rf"^\[ *(\d+)/(\d+)\] (\S+) +(running|done|cached|failed)(?: +({DURATION}))?$"
)
# What the libraries write, none of which belongs on the console by default.
NOISE = (
    "INFO:absl",
    " INFO absl: ",
    "executor_specs",  # the deployment config, dumped field by field
    "create_time_since_epoch",  # ML Metadata protos
    "cuda",
    "oneDNN",
    "FutureWarning",
    "Epoch 1/",  # Keras' own progress
    "Traceback",
)


def _env(tmp):
    return dict(os.environ, TMPDIR=str(tmp))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("console")
    (work / "tmp").mkdir()
    write_synthetic_ratings(work / "ratings.csv", 300, 200, 12_000, seed=7)
    return work


@pytest.fixture(scope="module")
def default_run(work):
    return run_local_runner(
        "--data",
        work / "ratings.csv",
        "--output-root",
        work / "out",
        "--epochs",
        2,
        "--rmse-upper-bound",
        10,
        env=_env(work / "tmp"),
    )


def _log_path(stdout: str) -> str:
    first = next(line for line in stdout.splitlines() if line.startswith("Log: "))
    return first.split(maxsplit=1)[1]


def test_a_line_as_each_component_starts_and_ends_then_the_summary(default_run, work):
    result = default_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    events = [COMPONENT_LINE.match(line) for line in lines]
    events = [m.groups() for m in events if m]
    total = int(events[0][1])
    assert len(events) == 2 * total
    for number, (start, end) in enumerate(zip(events[::2], events[1::2], strict=False), start=1):
        assert start[0] == end[0] == str(number) and start[2] == end[2]
        assert start[3] == "running" and start[4] is None
        assert end[3] == "done" and re.fullmatch(r"\d+\.\ds|\d+m \d\ds", end[4])
    names = [start[2] for start in events[::2]]
    for name in ("ArrowCsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert name in names
    # The Trainer's epochs, between its two lines, with the eval RMSE.
    trainer = lines.index(next(line for line in lines if re.search(r"\] Trainer +running$", line)))
    epochs = lines[trainer + 1 : trainer + 3]
    for epoch, line in enumerate(epochs, start=1):
        assert re.fullmatch(
            rf" +epoch {epoch}/2  \d+ steps  {DURATION}  eval RMSE \d\.\d{{4}}", line
        ), line
    assert re.search(r"\] Trainer +done ", lines[trainer + 3])
    assert re.fullmatch(
        rf"Pipeline finished in {DURATION} \({total} components\)\.", lines[lines.index("") - 1]
    )
    # The summary as before, then where the log is.
    summary = result.stdout.split("\n\n", 1)[1]
    for text in (
        "Trained model:",
        "root_mean_squared_error",
        "Blessed by the Evaluator",
        "Pushed to:",
    ):
        assert text in summary
    log = _log_path(result.stdout)
    assert lines[-2].startswith("Report:") and lines[-1] == f"Log:            {log}"
    assert os.path.dirname(log) == str(work / "out" / "logs")


def test_the_libraries_output_is_in_the_log_not_on_the_console(default_run):
    result = default_run
    assert result.returncode == 0
    assert result.stderr == ""
    for text in NOISE:
        assert text not in result.stdout, text
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert len(result.stdout.splitlines()) < 80
    with open(_log_path(result.stdout), encoding="utf-8", errors="replace") as f:
        log = f.read()
    for text in ("Component Trainer is running.", "executor_specs", "Epoch 2/2", "Pushed to:"):
        assert text in log, text


def test_a_failed_component_prints_its_error_and_the_log(work):
    # A Beam runner that does not exist: the first Beam component fails.
    result = run_local_runner(
        "--data",
        work / "ratings.csv",
        "--output-root",
        work / "failing",
        "--beam-arg=--runner=NoSuchRunner",
        env=_env(work / "tmp"),
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    error, full_log = result.stderr.splitlines()
    failed = COMPONENT_LINE.match(result.stdout.splitlines()[-1]).groups()
    assert failed[3] == "failed"
    assert error.startswith(f"error: {failed[2]} failed: ValueError: Unexpected pipeline runner: ")
    assert "NoSuchRunner" in error
    assert full_log == f"full log: {_log_path(result.stdout)}"
    with open(_log_path(result.stdout), encoding="utf-8", errors="replace") as f:
        log = f.read()
    assert "Traceback (most recent call last)" in log and "NoSuchRunner" in log
    for text in NOISE:
        assert text not in result.stdout + result.stderr, text


def test_verbose_streams_the_log_too(work):
    result = run_local_runner(
        "--data",
        work / "ratings.csv",
        "--output-root",
        work / "failing_verbose",
        "--beam-arg=--runner=NoSuchRunner",
        "--verbose",
        env=_env(work / "tmp"),
    )
    assert result.returncode == 1
    assert "Component ArrowCsvExampleGen is running." in result.stderr
    assert re.search(r"^\[ 1/\d+\] ArrowCsvExampleGen +running$", result.stdout, re.M)
    assert "error: " in result.stderr and "full log: " in result.stderr
    with open(_log_path(result.stdout), encoding="utf-8", errors="replace") as f:
        assert "Component ArrowCsvExampleGen is running." in f.read()
