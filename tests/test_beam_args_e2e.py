"""local_runner.py --beam-arg: the user's Beam options reach every Beam component.

The fast tests check the flags' order and that Beam resolves them to the
user's values; the slow one runs the whole pipeline on real MovieLens-100K
with Beam's multi-process engine.
"""

import glob
import os

import pytest

import local_runner
from conftest import run_local_runner
from pipeline import configs

MULTI_PROCESSING = [
    "--beam-arg=--direct_running_mode=multi_processing",
    "--beam-arg=--direct_num_workers=2",
]


def _beam_args(tmp_path, *argv):
    return local_runner.pipeline_config(
        local_runner.parse_args(list(argv)), str(tmp_path)
    ).beam_pipeline_args


def test_without_beam_args_the_local_defaults_stand(tmp_path):
    assert _beam_args(tmp_path) == configs.local_beam_pipeline_args()


def test_beam_args_follow_the_defaults_and_override_them(tmp_path):
    from apache_beam.options import pipeline_options

    args = _beam_args(tmp_path, *MULTI_PROCESSING, "--beam-arg=--max_cache_memory_usage_mb=0")
    defaults = configs.local_beam_pipeline_args()
    assert args == defaults + [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
        "--max_cache_memory_usage_mb=0",
    ]
    # What TFX's Beam executors build their pipeline from: the last value wins.
    options = pipeline_options.PipelineOptions(args)
    direct = options.view_as(pipeline_options.DirectOptions)
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_num_workers == 2
    # The defaults the user did not override stay.
    assert options.view_as(pipeline_options.StandardOptions).runner == "FnApiRunner"
    setup_file = options.view_as(pipeline_options.SetupOptions).setup_file
    assert f"--setup_file={setup_file}" in defaults


def test_large_data_gets_worker_processes_for_the_parallel_steps_unless_the_user_chose(
    tmp_path,
):
    from pipeline import beam_plan

    args = local_runner.parse_args([])
    args.data_bytes = beam_plan.PARALLEL_FROM_BYTES
    config = local_runner.pipeline_config(args, str(tmp_path))
    assert config.beam_pipeline_args == configs.local_beam_pipeline_args()
    expected = beam_plan.plan(args.data_bytes, []).parallel_step_args
    assert config.parallel_step_beam_args == config.evaluator_beam_args == expected
    args.data_bytes = beam_plan.EVALUATOR_IN_PROCESS_FROM_BYTES
    config = local_runner.pipeline_config(args, str(tmp_path))
    assert config.parallel_step_beam_args == expected and config.evaluator_beam_args == []
    args = local_runner.parse_args(MULTI_PROCESSING)
    args.data_bytes = beam_plan.PARALLEL_FROM_BYTES
    config = local_runner.pipeline_config(args, str(tmp_path))
    assert config.parallel_step_beam_args == config.evaluator_beam_args == []


def test_a_beam_arg_that_is_no_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        local_runner.parse_args(["--beam-arg", "direct_num_workers=2"])
    assert exit_info.value.code == 2
    assert "--beam-arg" in capsys.readouterr().err


@pytest.mark.slow
def test_multi_processing_run_on_movielens_100k_is_blessed_and_pushed(ml_100k, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    output_root = tmp_path / "out"
    result = run_local_runner(
        "--data",
        ml_100k,
        "--output-root",
        output_root,
        "--epochs",
        5,
        *MULTI_PROCESSING,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "Blessed by the Evaluator" in result.stdout
    assert "Pushed to:" in result.stdout
    pushed = glob.glob(str(output_root / "serving_model" / "*" / "*" / "saved_model.pb"))
    assert len(pushed) == 1, pushed
