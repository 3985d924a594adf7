"""create_pipeline wiring and settings, compiled to TFX IR without running."""

from tfx.dsl.compiler import compiler

from pipeline import configs
from pipeline import pipeline as pipeline_lib
from trainer import model_config


def _config(**changes):
    return configs.PipelineConfig(
        data_root="/data",
        output_root="/out",
        beam_pipeline_args=configs.local_beam_pipeline_args(),
        **changes,
    )


def _compiled(config):
    ir = compiler.Compiler().compile(pipeline_lib.create_pipeline(config))
    return {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}


def test_components_run_in_order_and_bad_data_stops_before_transform():
    nodes = _compiled(_config())
    assert list(nodes) == [
        "CsvExampleGen",
        "ImportSchemaGen",
        "latest_blessed_model_resolver",
        "StatisticsGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    ]
    assert "AnomaliesGate" in nodes["Transform"].upstream_nodes
    assert "Evaluator" in nodes["Pusher"].upstream_nodes


def test_code_is_referenced_by_module_path():
    nodes = _compiled(_config())
    transform_params = nodes["Transform"].parameters.parameters
    trainer_params = nodes["Trainer"].parameters.parameters
    assert (
        transform_params["preprocessing_fn"].field_value.string_value
        == "components.preprocessing.preprocessing_fn"
    )
    assert trainer_params["run_fn"].field_value.string_value == "trainer.task.run_fn"
    assert "module_file" not in transform_params
    assert "module_file" not in trainer_params


def test_model_settings_reach_the_trainer():
    config = _config(model=model_config.SEED_BASELINE.replace(epochs=7))
    custom = _compiled(config)["Trainer"].parameters.parameters["custom_config"]
    assert '"epochs": 7' in custom.field_value.string_value


def test_eval_config_carries_the_thresholds():
    settings = configs.EvalSettings(rmse_upper_bound=0.97, rmse_max_increase=0.02)
    eval_config = pipeline_lib.eval_config(settings)
    (spec,) = eval_config.metrics_specs
    by_name = {m.class_name: m for m in spec.metrics}
    assert {"ExampleCount", "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError"} <= set(
        by_name
    )
    threshold = by_name["RootMeanSquaredError"].threshold
    assert threshold.value_threshold.upper_bound.value == 0.97
    assert threshold.change_threshold.absolute.value == 0.02
    assert eval_config.model_specs[0].label_key == "rating"


def test_local_beam_args_name_a_setup_file_so_tfx_builds_no_sdist():
    from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top

    args = configs.local_beam_pipeline_args()
    assert dependency_utils.make_beam_dependency_flags(args) == args
