"""create_pipeline wiring and settings, compiled to TFX IR without running."""

import tensorflow_model_analysis as tfma
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
        "ArrowCsvExampleGen",
        "ImportSchemaGen",
        "latest_blessed_model_resolver",
        "StatisticsGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "Evaluator",
        "ServingCheck",
        "Pusher",
    ]
    assert "AnomaliesGate" in nodes["Transform"].upstream_nodes
    assert {"Evaluator", "ServingCheck"} <= set(nodes["Pusher"].upstream_nodes)


def test_the_pusher_requires_the_serving_check_blessing():
    nodes = _compiled(_config())
    inputs = nodes["Pusher"].inputs.inputs
    (channel,) = inputs["infra_blessing"].channels
    assert channel.producer_node_query.id == configs.SERVING_CHECK_ID


def test_docker_serving_check_is_tfx_infra_validator_with_tf_serving():
    nodes = _compiled(_config(tf_serving_image="tensorflow/serving:2.16.1"))
    check = nodes[configs.SERVING_CHECK_ID]
    assert check.node_info.type.name.endswith("InfraValidator")
    spec = check.parameters.parameters["serving_spec"].field_value.string_value
    assert "tensorflow/serving" in spec and "2.16.1" in spec and "local_docker" in spec


def test_without_a_resolver_the_evaluator_has_no_baseline_and_no_change_threshold():
    nodes = _compiled(_config(compare_with_latest_blessed=False))
    assert configs.LATEST_BLESSED_MODEL_RESOLVER_ID not in nodes
    assert "baseline_model" not in nodes["Evaluator"].inputs.inputs
    settings = configs.EvalSettings()
    (spec,) = pipeline_lib.eval_config(settings, with_baseline=False).metrics_specs
    for metric in spec.metrics:
        for per_slice in metric.per_slice_thresholds:
            assert not per_slice.threshold.HasField("change_threshold")


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
    assert {
        "RatingExampleCount",
        "RatingMeanSquaredError",
        "RatingMeanAbsoluteError",
        "RatingRootMeanSquaredError",
        "RatingMeanLabel",
        "RatingMeanPrediction",
    } <= set(by_name)
    # The thresholds gate the overall slice only, never the analysis slices.
    (per_slice,) = by_name["RatingRootMeanSquaredError"].per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    assert not by_name["RatingRootMeanSquaredError"].HasField("threshold")
    threshold = per_slice.threshold
    assert threshold.value_threshold.upper_bound.value == 0.97
    assert threshold.change_threshold.absolute.value == 0.02
    assert eval_config.model_specs[0].label_key == "rating"
    # An untrained model (a constant prediction) cannot pass, whatever the bound.
    (gain,) = by_name["RatingRmseGainOverMean"].per_slice_thresholds
    assert list(gain.slicing_specs) == [tfma.SlicingSpec()]
    assert gain.threshold.value_threshold.lower_bound.value == settings.min_gain_over_mean > 0


def test_eval_config_slices_on_the_configured_transformed_features():
    settings = configs.EvalSettings(slicing_features=("user_activity", "rating"))
    eval_config = pipeline_lib.eval_config(settings)
    assert [list(s.feature_keys) for s in eval_config.slicing_specs] == [
        [],  # overall
        ["user_activity"],
        ["rating"],
    ]
    assert list(eval_config.model_specs[0].preprocessing_function_names) == ["transform_features"]
    default = pipeline_lib.eval_config(configs.EvalSettings())
    assert [list(s.feature_keys) for s in default.slicing_specs] == [
        [],
        ["movie_popularity"],
        ["user_activity"],
        ["rating"],
    ]


def test_an_eval_config_without_thresholds_blesses_nothing():
    eval_config = pipeline_lib.eval_config(configs.EvalSettings(), with_thresholds=False)
    assert not tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs)


def test_full_model_comparison_adds_a_trainer_and_an_evaluator_off_the_blessing_path():
    assert configs.FULL_MODEL_TRAINER_ID not in _compiled(_config())
    narrow = model_config.preset("md_16x").replace(learning_rate=0.004)
    nodes = _compiled(_config(compare_full_model=True, model=narrow))
    trainer = nodes[configs.FULL_MODEL_TRAINER_ID]
    custom = trainer.parameters.parameters["custom_config"].field_value.string_value
    assert '"user_embedding": {"type": "full"}' in custom
    assert '"movie_embedding": {"type": "full"}' in custom
    assert '"embedding_dim": 64' in custom  # full size, whatever the compressed width
    assert '"learning_rate": 0.004' in custom  # otherwise trained alike
    evaluator = nodes[configs.COMPRESSION_EVALUATOR_ID]
    assert {"Trainer", configs.FULL_MODEL_TRAINER_ID} <= set(evaluator.upstream_nodes)
    assert configs.COMPRESSION_EVALUATOR_ID not in nodes["Pusher"].upstream_nodes


def test_local_beam_args_name_a_setup_file_so_tfx_builds_no_sdist():
    from tfx.utils import dependency_utils  # pylint: disable=g-import-not-at-top

    args = configs.local_beam_pipeline_args()
    assert dependency_utils.make_beam_dependency_flags(args) == args


def test_changed_code_reaches_the_cache_key_of_transform_and_the_trainer():
    nodes = _compiled(_config())
    fingerprint = configs.code_fingerprint()
    for node in ("Transform", "Trainer"):
        custom = nodes[node].parameters.parameters["custom_config"].field_value.string_value
        assert fingerprint in custom, node


def test_the_code_fingerprint_follows_the_code_and_not_its_tests(tmp_path):
    (tmp_path / "task.py").write_text("EPOCHS = 3\n")
    before = configs.code_fingerprint([str(tmp_path)])
    (tmp_path / "task_test.py").write_text("assert True\n")
    assert configs.code_fingerprint([str(tmp_path)]) == before
    (tmp_path / "task.py").write_text("EPOCHS = 4\n")
    changed = configs.code_fingerprint([str(tmp_path)])
    assert changed != before
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "qr.py").write_text("M = 2\n")  # a subpackage counts too
    assert configs.code_fingerprint([str(tmp_path)]) != changed


def _beam_args_per_step(config):
    from tfx.proto.orchestration import executable_spec_pb2
    from tfx.proto.orchestration import pipeline_pb2

    ir = compiler.Compiler().compile(pipeline_lib.create_pipeline(config))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    args = {}
    for node, packed in deployment.executor_specs.items():
        spec = executable_spec_pb2.BeamExecutableSpec()
        if packed.Unpack(spec):
            args[node] = [arg.value.string_value for arg in spec.beam_pipeline_args_placeholders]
    return args


def test_parallel_step_flags_reach_the_data_parallel_steps_only_and_come_last():
    parallel = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    evaluator = ["--direct_num_workers=3"]
    config = _config(
        compare_full_model=True, parallel_step_beam_args=parallel, evaluator_beam_args=evaluator
    )
    args = _beam_args_per_step(config)
    evaluators = {"Evaluator", configs.COMPRESSION_EVALUATOR_ID}
    steps = {"StatisticsGen", "Transform"}
    for node, flags in args.items():
        if node in steps:
            assert flags == configs.local_beam_pipeline_args() + parallel, node
        elif node in evaluators:
            assert flags == configs.local_beam_pipeline_args() + evaluator, node
        else:
            assert flags == configs.local_beam_pipeline_args(), node
    assert steps | evaluators < set(args) and "ArrowCsvExampleGen" in args
