"""The measuring helpers: machine facts, subprocess time and memory, ML Metadata timings."""

import os
import subprocess
import sys

import psutil
import pytest

from benchmarks import measure


def test_machine_info_is_read_from_this_machine_and_checkout():
    info = measure.machine_info()
    assert info["nproc"] == len(os.sched_getaffinity(0))
    assert info["ram_gb"] == round(psutil.virtual_memory().total / measure.GIB, 1)
    assert info["cpu_model"] and info["cpu_model"] != "unknown"
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=measure.REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert info["git_head"] == head
    assert isinstance(info["git_uncommitted_files"], int)


def test_latency_summary_is_in_milliseconds():
    summary = measure.latency_summary([0.001] * 98 + [0.010, 0.020])
    assert summary["calls"] == 100
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["max_ms"] == pytest.approx(20.0)
    assert 1.0 < summary["p99_ms"] < 20.0


def test_keras_epochs_reads_verbose_2_lines_in_any_unit():
    log = "\n".join(
        [
            "Epoch 1/3",
            "664/664 - 5s - 8ms/step - loss: 1.08 - val_loss: 1.03 - val_rmse: 1.0166",
            "84/84 - 0s - 950us/step - loss: 0.9 - val_rmse: 0.9421",
            "12/12 - 14s - 1s/step - loss: 0.8",
            "3/664 [....] - ETA: 5s",  # progress, not an epoch's end
        ]
    )
    assert measure.keras_epochs(log) == [
        {"steps": 664, "seconds": 5.0, "ms_per_step": 8.0, "val_rmse": 1.0166},
        {"steps": 84, "seconds": 0.0, "ms_per_step": 0.95, "val_rmse": 0.9421},
        {"steps": 12, "seconds": 14.0, "ms_per_step": 1000.0},
    ]


def test_run_measured_reports_exit_time_and_memory(tmp_path):
    code = (
        "import time; block = bytearray(80 * 2**20); block[::4096] = b'x' * len(block[::4096]);"
        " time.sleep(0.5); raise SystemExit(3)"
    )
    run = measure.run_measured([sys.executable, "-c", code], str(tmp_path / "log"))
    assert run["returncode"] == 3
    assert run["seconds"] >= 0.5
    assert run["peak_process_rss_gb"] >= 80 / 1024
    assert run["peak_tree_rss_gb"] >= 80 / 1024


def test_run_measured_kills_at_the_timeout(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    run = measure.run_measured(command, str(tmp_path / "log"), timeout=0.5)
    assert run["returncode"] == -9 and run["seconds"] < 10


def test_component_seconds_reads_node_executions(tmp_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    path = str(tmp_path / "metadata.db")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    node_type = store.put_context_type(pb.ContextType(name="node"))
    execution_type = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    context = pb.Context(type_id=node_type, name="my-pipeline.Trainer")
    [context.id] = store.put_contexts([context])
    execution = pb.Execution(type_id=execution_type, last_known_state=pb.Execution.RUNNING)
    execution_id, _, _ = store.put_execution(execution, [], [context])
    [execution] = store.get_executions_by_id([execution_id])
    execution.last_known_state = pb.Execution.COMPLETE
    store.put_execution(execution, [], [context])
    del store

    timings = measure.component_seconds(path)
    assert list(timings) == ["Trainer"]
    assert timings["Trainer"]["state"] == "COMPLETE"
    assert timings["Trainer"]["executions"] == 1
    assert 0 <= timings["Trainer"]["seconds"] < 60
    assert timings["Trainer"]["start"] <= timings["Trainer"]["end"]


def test_peak_rss_per_component_takes_the_samples_inside_each_run():
    timings = {"Transform": {"start": 10.0, "end": 20.0}, "Trainer": {"start": 20.5, "end": 30.0}}
    gib = measure.GIB
    samples = [(5.0, 9 * gib), (12.0, 1 * gib), (19.0, 2 * gib), (25.0, 3 * gib), (40.0, 8 * gib)]
    peaks = measure.peak_rss_per_component(timings, samples)
    assert peaks == {"Transform": 2.0, "Trainer": 3.0}
