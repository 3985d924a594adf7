"""Wires the components: ExampleGen -> Transform -> Trainer -> Evaluator -> Pusher.

The same ``create_pipeline`` runs locally (LocalDagRunner) and compiles for
Kubeflow Pipelines / Vertex AI; runners differ only in the settings they pass.
"""

import dataclasses

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma

# The modules behind ``tfx.v1``'s names, imported directly: ``from tfx import
# v1`` also imports the Google Cloud AI Platform extensions, which only
# Vertex AI needs and every local run would wait for.
from tfx.components import Evaluator
from tfx.components import ExampleValidator
from tfx.components import StatisticsGen
from tfx.components import Trainer
from tfx.components import Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import features
from components import metrics
from components.arrow_csv_example_gen import ArrowCsvExampleGen
from components.pusher import AtomicPusher
from components.serving_check import ServingCheck
from components.validation_gate import AnomaliesGate
from pipeline import configs

# Per slice: error, size, and calibration (mean prediction beside mean label).
# The rating metrics share one pass over the examples (components/metrics.py).
_PER_SLICE_METRICS = tuple((metric.__name__, metrics.__name__) for metric in metrics.RATING_METRICS)
# Per user: the model ranks each user's eval movies of the slice. They only
# measure; the blessing stays on the rating error.
_RANKING_METRICS = tuple((metric.__name__, metrics.__name__) for metric in metrics.RANKING_METRICS)
_BLESSING_METRIC = metrics.RatingRootMeanSquaredError.__name__
# Blessing also needs a gain over the constant predictor: no absolute RMSE
# bound fits every data set, and an untrained model passes a loose one.
_GAIN_METRIC = metrics.RatingRmseGainOverMean.__name__


def eval_config(
    settings: configs.EvalSettings, with_thresholds: bool = True, with_baseline: bool = True
) -> tfma.EvalConfig:
    """Metrics on the eval split, overall and per slice, and the blessing thresholds.

    The ranking metrics group a slice's examples by user themselves
    (``components/metrics.py`` says why not with TFMA's ``query_key``).

    The slicing features come from the model's ``transform_features``
    signature (TFMA looks in the transformed features before the raw ones).
    ``with_thresholds=False`` gives an Evaluator that only measures: without
    thresholds TFX's Evaluator writes no blessing decision.
    ``with_baseline=False`` drops the change threshold, for pipelines with no
    latest blessed model to compare with.
    """
    rmse_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={"value": settings.rmse_upper_bound})
    )
    if with_baseline:
        rmse_threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.LOWER_IS_BETTER,
                absolute={"value": settings.rmse_max_increase},
            )
        )
    metric_configs = []
    for class_name, module in _PER_SLICE_METRICS + _RANKING_METRICS:
        metric = tfma.MetricConfig(class_name=class_name, module=module or "")
        if with_thresholds and class_name == _BLESSING_METRIC:
            # A plain MetricConfig.threshold would gate every slice (one
            # badly served rating value would block the model); the
            # blessing is about the overall slice only.
            metric.per_slice_thresholds.append(
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()], threshold=rmse_threshold
                )
            )
        if with_thresholds and class_name == _GAIN_METRIC:
            metric.per_slice_thresholds.append(
                tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(
                        value_threshold=tfma.GenericValueThreshold(
                            lower_bound={"value": settings.min_gain_over_mean}
                        )
                    ),
                )
            )
        metric_configs.append(metric)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=features.LABEL,
                prediction_key="rating",
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[name]) for name in settings.slicing_features],
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)],
    )


def servability_check(config: configs.PipelineConfig, trainer, example_gen):
    """The node whose ``blessing`` the Pusher requires: the model must serve.

    By default the model is loaded in a fresh process the way TF Serving
    loads it (``components/serving_check.py``); with ``tf_serving_image`` set,
    TFX's InfraValidator starts that TensorFlow Serving image in the local
    Docker engine and sends it the eval examples.
    """
    if not config.tf_serving_image:
        return ServingCheck(
            model=trainer.outputs["model"], examples=example_gen.outputs["examples"]
        )
    from tfx.components import InfraValidator  # pylint: disable=g-import-not-at-top
    from tfx.proto import infra_validator_pb2  # pylint: disable=g-import-not-at-top

    image, _, tag = config.tf_serving_image.rpartition(":")
    return InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        serving_spec=infra_validator_pb2.ServingSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServing(image_name=image, tags=[tag]),
            local_docker=infra_validator_pb2.LocalDockerConfig(),
        ),
        request_spec=infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
                signature_names=["serving_default"]
            ),
            split_name="eval",
        ),
    ).with_id(configs.SERVING_CHECK_ID)


def create_pipeline(config: configs.PipelineConfig, metadata_connection_config=None) -> Pipeline:
    # Changed code re-runs Transform and the Trainers (and what follows them).
    code = configs.code_fingerprint()
    example_gen = ArrowCsvExampleGen(
        input_base=config.data_root,
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(
                        name="train", hash_buckets=configs.TRAIN_BUCKETS
                    ),
                    example_gen_pb2.SplitConfig.Split(
                        name="eval", hash_buckets=configs.EVAL_BUCKETS
                    ),
                ]
            )
        ),
    )

    schema_gen = ImportSchemaGen(schema_file=f"{config.schema_dir}/schema.pbtxt")
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"],
        # Approximate (sketch) top values and unique counts of the id strings:
        # the schema checks neither, and exact counting is a large share of
        # StatisticsGen's time on large data.
        stats_options=tfdv.StatsOptions(use_sketch_based_topk_uniques=True),
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])

    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=configs.PREPROCESSING_FN,
        custom_config={"code_fingerprint": code},
        # Its pre- and post-transform statistics feed nothing downstream
        # (StatisticsGen's are the ones validated) and cost much of its time.
        disable_statistics=True,
        # The Trainer applies the graph to the raw examples itself, so
        # Transform writes no transformed copy of the examples.
        materialize=False,
    )
    # Bad data stops the run before any analysis or training.
    transform.add_upstream_node(anomalies_gate)

    # The Vertex Trainer runs the same run_fn in a Vertex AI custom job; its
    # job settings travel in custom_config next to the model's.
    trainer_class = Trainer
    if config.vertex_training:
        from tfx.extensions.google_cloud_ai_platform.trainer.component import (  # pylint: disable=g-import-not-at-top
            Trainer as trainer_class,
        )

    def trainer_of(model):
        return trainer_class(
            run_fn=configs.RUN_FN,
            examples=example_gen.outputs["examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            custom_config={
                "model": dataclasses.asdict(model),
                "code_fingerprint": code,
                **(config.vertex_training or {}),
            },
        )

    trainer = trainer_of(config.model)
    comparison = []
    if config.compare_full_model:
        full_model_trainer = trainer_of(configs.full_table_model(config.model)).with_id(
            configs.FULL_MODEL_TRAINER_ID
        )
        # Measures only: its blessing output records no decision, so neither
        # the Pusher nor the latest-blessed-model lookup depends on it.
        compression_evaluator = Evaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=full_model_trainer.outputs["model"],
            eval_config=eval_config(config.evaluation, with_thresholds=False),
        ).with_id(configs.COMPRESSION_EVALUATOR_ID)
        comparison = [full_model_trainer, compression_evaluator]

    baseline = []
    if config.compare_with_latest_blessed:
        baseline = [
            Resolver(
                strategy_class=LatestBlessedModelStrategy,
                model=Channel(type=standard_artifacts.Model),
                model_blessing=Channel(type=standard_artifacts.ModelBlessing),
            ).with_id(configs.LATEST_BLESSED_MODEL_RESOLVER_ID)
        ]
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline[0].outputs["model"] if baseline else None,
        eval_config=eval_config(config.evaluation, with_baseline=bool(baseline)),
    )
    serving_check = servability_check(config, trainer, example_gen)

    if config.vertex_serving:
        from tfx.extensions.google_cloud_ai_platform.pusher.component import Pusher as VertexPusher  # pylint: disable=g-import-not-at-top

        pusher = VertexPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            infra_blessing=serving_check.outputs["blessing"],
            custom_config=config.vertex_serving,
        )
    else:
        pusher = AtomicPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            infra_blessing=serving_check.outputs["blessing"],
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(
                    base_directory=config.serving_model_dir
                )
            ),
        ).with_id("Pusher")

    if config.parallel_step_beam_args:
        for step in (statistics_gen, transform):
            step.with_beam_pipeline_args(config.parallel_step_beam_args)
    if config.evaluator_beam_args:
        for step in (evaluator, *comparison[1:]):
            step.with_beam_pipeline_args(config.evaluator_beam_args)
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=[
            example_gen,
            schema_gen,
            statistics_gen,
            example_validator,
            anomalies_gate,
            transform,
            trainer,
            *baseline,
            evaluator,
            serving_check,
            pusher,
            *comparison,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam_pipeline_args or [],
    )
