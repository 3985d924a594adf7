"""A run killed during training: the next run completes, reusing what was done."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import REPO_ROOT
from conftest import local_runner_command
from conftest import write_synthetic_ratings

pytestmark = pytest.mark.slow


def _command(data_file, output_root, epochs):
    return local_runner_command(
        "--data",
        data_file,
        "--output-root",
        output_root,
        "--epochs",
        epochs,
        "--rmse-upper-bound",
        10,
    )


def test_rerun_after_kill_during_trainer_completes_from_cache(tmp_path):
    data_file = tmp_path / "ratings.csv"
    write_synthetic_ratings(data_file, 200, 150, 6_000, seed=9)
    output_root = tmp_path / "out"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen(
            _command(data_file, output_root, epochs=30),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 600
        while "epoch 2/30" not in log_path.read_text():  # the Trainer's progress line
            assert first.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the Trainer never started"
            time.sleep(0.5)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (output_root / "serving_model").exists()

    second = subprocess.run(
        _command(data_file, output_root, epochs=2),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-4000:]
    # ExampleGen, ImportSchemaGen, StatisticsGen, ExampleValidator, the gate and
    # Transform finished in the killed run and are reused.
    cached = re.findall(r"^\[[ \d]+/\d+\] (\S+) +cached ", second.stdout, re.M)
    assert len(cached) >= 5 and "Transform" in cached, second.stdout[-4000:]
    assert "Trainer" not in cached
    assert "Pushed to:" in second.stdout
    assert len(list((output_root / "serving_model").glob("*/*/saved_model.pb"))) == 1
