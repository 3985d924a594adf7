"""beam_plan: worker processes for the data-parallel steps only on large data."""

import pytest

from pipeline import beam_plan

LARGE = beam_plan.PARALLEL_FROM_BYTES


def test_large_data_runs_the_steps_in_one_worker_per_cpu():
    plan = beam_plan.plan(LARGE, [], cpus=4)
    assert plan.workers == 4
    assert plan.parallel_step_args == [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=4",
    ]
    assert "4 worker processes" in plan.describe()
    assert plan.evaluator_args == plan.parallel_step_args


def test_the_largest_data_keeps_the_evaluator_in_process():
    # Each Evaluator worker would load the model with its millions of ids.
    below = beam_plan.plan(beam_plan.EVALUATOR_IN_PROCESS_FROM_BYTES - 1, [], cpus=2)
    plan = beam_plan.plan(beam_plan.EVALUATOR_IN_PROCESS_FROM_BYTES, [], cpus=2)
    assert below.evaluator_args == below.parallel_step_args != []
    assert plan.parallel_step_args == below.parallel_step_args
    assert plan.evaluator_args == []
    assert "the Evaluator in this process" in plan.describe()


@pytest.mark.parametrize(
    "data_bytes, cpus, why",
    [(LARGE - 1, 8, "under the"), (None, 8, "unknown"), (LARGE, 1, "1 usable CPU")],
)
def test_small_or_unknown_data_or_one_cpu_stays_in_process(data_bytes, cpus, why):
    plan = beam_plan.plan(data_bytes, [], cpus=cpus)
    assert plan.workers == 1 and plan.parallel_step_args == plan.evaluator_args == []
    assert why in plan.describe() and "in this process" in plan.describe()


@pytest.mark.parametrize(
    "flag", ["--direct_num_workers=3", "--direct_running_mode=multi_threading"]
)
def test_the_users_engine_flags_replace_the_plan(flag):
    plan = beam_plan.plan(LARGE, ["--max_cache_memory_usage_mb=0", flag], cpus=8)
    assert plan.parallel_step_args == plan.evaluator_args == []
    assert "--beam-arg" in plan.describe()


def test_a_cgroup_cpu_quota_caps_the_affinity(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert beam_plan.usable_cpus(str(tmp_path)) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert beam_plan.usable_cpus(str(tmp_path)) >= 1
