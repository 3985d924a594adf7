"""Fast tests of the speed benchmark's helpers (no TensorFlow; a few seconds).

PYTHONPATH=. .venv/bin/python -m pytest benchmarks/speed_test.py
"""

import json
import os
import sys

import numpy as np
import pytest

from benchmarks import speed
from benchmarks import speed_report
from benchmarks import speed_tools


def test_percentile_matches_numpy_linear_interpolation():
    samples = np.random.default_rng(0).exponential(size=101).tolist()
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert speed_tools.percentile(samples, q) == pytest.approx(np.percentile(samples, q))
    assert speed_tools.percentile([3.0], 99) == 3.0
    assert speed_tools.percentile([4.0, 1.0], 50) == 2.5


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        speed_tools.percentile([], 50)
    with pytest.raises(ValueError):
        speed_tools.percentile([1.0], 101)


def test_latency_summary_is_in_milliseconds():
    summary = speed_tools.latency_summary([0.001] * 98 + [0.010, 0.020])
    assert summary["calls"] == 100
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["max_ms"] == pytest.approx(20.0)
    assert summary["p99_ms"] == pytest.approx(np.percentile([1.0] * 98 + [10.0, 20.0], 99))


def test_keras_epochs_reads_verbose_2_lines_in_any_unit():
    log = "\n".join(
        [
            "INFO:absl:Training model",
            "Epoch 1/3",
            "664/664 - 5s - 8ms/step - loss: 1.08 - rmse: 1.04 - val_loss: 1.03 - val_rmse: 1.0166",
            "Epoch 2/3",
            "84/84 - 0s - 950us/step - loss: 0.9 - val_rmse: 0.9421",
            "12/12 - 14s - 1s/step - loss: 0.8",
            "3/664 [....] - ETA: 5s",  # a progress line, not an epoch's end
        ]
    )
    epochs = speed_tools.keras_epochs(log)
    assert epochs == [
        {"steps": 664, "seconds": 5.0, "ms_per_step": 8.0, "val_rmse": 1.0166},
        {"steps": 84, "seconds": 0.0, "ms_per_step": 0.95, "val_rmse": 0.9421},
        {"steps": 12, "seconds": 14.0, "ms_per_step": 1000.0},
    ]


def test_epoch_summary_time_to_best_and_to_target():
    # Epochs of 10 s training + 1 s validation, starting 2 s after ``started``.
    begin = [102.0, 113.0, 124.0, 135.0]
    validation = [b + 10 for b in begin]
    end = [b + 11 for b in begin]
    rmse = [1.0, 0.95, 0.93, 0.94]
    summary = speed_tools.epoch_summary(100.0, begin, validation, end, rmse, [1000] * 4, 0.95)
    assert summary["best_epoch"] == 3
    assert summary["best_val_rmse"] == 0.93
    assert summary["seconds_to_best"] == pytest.approx(35.0)
    assert summary["epochs_to_target"] == 2
    assert summary["seconds_to_target"] == pytest.approx(24.0)
    assert summary["examples_per_second"] == 100
    never = speed_tools.epoch_summary(100.0, begin, validation, end, rmse, [1000] * 4, 0.5)
    assert never["epochs_to_target"] is None and never["seconds_to_target"] is None


def test_epoch_summary_skips_nan_rmse():
    summary = speed_tools.epoch_summary(
        0.0, [0.0, 1.0], [0.5, 1.5], [1.0, 2.0], [float("nan"), 0.9], [10, 10]
    )
    assert summary["best_epoch"] == 2


def test_component_seconds_reads_node_executions(tmp_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = str(tmp_path / "metadata.db")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    store = metadata_store.MetadataStore(config)
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    context = metadata_store_pb2.Context(type_id=node_type, name="my-pipeline.Trainer")
    [context_id] = store.put_contexts([context])
    context.id = context_id
    execution = metadata_store_pb2.Execution(
        type_id=execution_type, last_known_state=metadata_store_pb2.Execution.RUNNING
    )
    execution_id, _, _ = store.put_execution(execution, [], [context])
    [execution] = store.get_executions_by_id([execution_id])
    execution.last_known_state = metadata_store_pb2.Execution.COMPLETE
    store.put_execution(execution, [], [context])
    del store

    timings = speed_tools.component_seconds(path)
    assert list(timings) == ["Trainer"]
    assert timings["Trainer"]["state"] == "COMPLETE"
    assert timings["Trainer"]["executions"] == 1
    assert 0 <= timings["Trainer"]["seconds"] < 60


def test_run_measured_reports_time_exit_and_memory(tmp_path):
    code = "import time; block = bytearray(80 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(0.4); raise SystemExit(3)"
    run = speed_tools.run_measured(
        [sys.executable, "-c", code], str(tmp_path), str(tmp_path / "log.txt")
    )
    assert run.returncode == 3
    assert run.timing.seconds >= 0.4
    assert run.peak_process_rss_bytes >= 80 * 2**20
    assert run.peak_tree_rss_bytes >= 80 * 2**20


def test_run_measured_kills_on_timeout(tmp_path):
    run = speed_tools.run_measured(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        str(tmp_path),
        str(tmp_path / "log.txt"),
        timeout=0.5,
    )
    assert run.returncode == -9
    assert run.timing.seconds < 10


def test_markdown_table_formats_cells():
    table = speed_tools.markdown_table(
        ["a", "b"], [[None, 1234567], [0.012345, "x|y"], [123.456, 2.5]]
    )
    assert table.splitlines() == [
        "| a | b |",
        "|---|---|",
        "| – | 1,234,567 |",
        "| 0.0123 | x\\|y |",
        "| 123.5 | 2.5 |",
    ]


def test_find_serving_model_prefers_the_pushed_model(tmp_path):
    trained = tmp_path / "pipelines" / "p" / "Trainer" / "model" / "7" / "Format-Serving"
    trained.mkdir(parents=True)
    (trained / "saved_model.pb").write_bytes(b"")
    assert speed.find_serving_model(str(tmp_path)) == (trained, "trainer output (not pushed)")
    pushed = tmp_path / "serving_model" / "p" / "1700000000"
    pushed.mkdir(parents=True)
    (pushed / "saved_model.pb").write_bytes(b"")
    assert speed.find_serving_model(str(tmp_path)) == (pushed, "pushed")


def test_targets_and_report_render_from_partial_results():
    results = {
        "trainer_speedup_to_seed_best": None,
        "serving_p50_ms_batch1": 1.5,
        "qr_100m_peak_rss_gb": 30.0,
        "sections": {
            "serving": {
                "measured": "2026-01-01T00:00:00",
                "command": "PYTHONPATH=. .venv/bin/python -m benchmarks.speed --sections serving",
                "machine": speed_tools.machine_info(),
                "git": {"head": "abc", "uncommitted_files": []},
                "quick": False,
                "seconds": 1.0,
                "load_1min_start": 1.0,
                "load_1min_end": 2.0,
            }
        },
    }
    results["targets"] = speed.targets(results)
    assert results["targets"] == {
        "trainer_speedup_to_seed_best >= 3": None,
        "serving_p50_ms_batch1 <= 2": True,
        "qr_100m_peak_rss_gb <= 24": False,
    }
    text = speed_report.render(json.loads(json.dumps(results)))
    assert "| serving_p50_ms_batch1 | 1.5 | ≤ 2 ms | **met** |" in text
    assert "**not met**" in text and "not measured" in text
    assert "--sections serving" in text


def test_parse_args_quick_shrinks_the_run():
    args = speed.parse_args(["--quick", "--sections", "scale,serving"])
    assert args.sections == ["scale", "serving"]
    assert args.datasets == ["builtin"]
    assert args.scale_ids == [1_000_000, 10_000_000]
    with pytest.raises(SystemExit):
        speed.parse_args(["--sections", "nonsense"])


def test_machine_info_names_the_cpu():
    info = speed_tools.machine_info()
    assert info["nproc"] >= 1 and info["ram_gb"] > 0
    assert os.getloadavg()  # the load average this benchmark records exists here


def test_pipeline_variants_patch_the_modules_they_stand_for(monkeypatch):
    from benchmarks import speed_pipeline_variant
    from pipeline import configs
    from trainer import model_config

    monkeypatch.setattr(configs, "local_beam_pipeline_args", configs.local_beam_pipeline_args)
    speed_pipeline_variant.use_multi_threading_beam()
    beam_args = configs.local_beam_pipeline_args()
    assert "--direct_running_mode=multi_threading" in beam_args
    assert "--direct_running_mode=in_memory" not in beam_args
    assert sum(a.startswith("--direct_num_workers") for a in beam_args) == 1

    name = model_config.DEFAULT_MODEL
    original = model_config.PRESETS[name]
    monkeypatch.setitem(model_config.PRESETS, name, original)
    speed_pipeline_variant.use_trainer_batch(1024, 8.0)
    patched = model_config.preset(name)
    assert patched.batch_size == 1024
    assert patched.learning_rate == pytest.approx(original.learning_rate * 8)


def test_pipeline_variants_undo_the_levers_they_name(monkeypatch):
    from benchmarks import speed_pipeline_variant
    from pipeline import configs
    from pipeline import pipeline as pipeline_lib
    from trainer import task

    for name in ("ArrowCsvExampleGen", "Transform", "StatisticsGen", "_PER_SLICE_METRICS"):
        monkeypatch.setattr(pipeline_lib, name, getattr(pipeline_lib, name))
    monkeypatch.setattr(task, "STEPS_PER_EXECUTION", task.STEPS_PER_EXECUTION)
    for variant in (
        "stock_csv_example_gen",
        "exact_statistics",
        "transform_statistics",
        "transform_materialize",
        "one_step_per_execution",
        "tfma_native_metrics",
    ):
        speed_pipeline_variant.VARIANTS[variant]()
    config = configs.PipelineConfig(data_root="/data", output_root="/out")
    components = {c.id: c for c in pipeline_lib.create_pipeline(config).components}

    assert "CsvExampleGen" in components and "ArrowCsvExampleGen" not in components
    assert components["StatisticsGen"].exec_properties["stats_options_json"] is None
    transform = components["Transform"].exec_properties
    assert transform["disable_statistics"] == 0
    assert "transformed_examples" in components["Transform"].outputs
    assert task.STEPS_PER_EXECUTION == 1
    metric_names = [
        m.class_name for m in pipeline_lib.eval_config(config.evaluation).metrics_specs[0].metrics
    ]
    assert "MeanSquaredError" in metric_names and "RatingMeanSquaredError" not in metric_names
