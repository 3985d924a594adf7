"""Named settings of the pipeline, in one place.

Runners (``local_runner.py``, ``kubeflow_v2_runner.py``) read these defaults
and override them from their flags; ``create_pipeline`` takes a
``PipelineConfig`` and nothing else.
"""

import dataclasses
import os
from typing import Any

from components import features
from trainer import model_config
from trainer.model_config import SEED_BASELINE
from trainer.model_config import ModelConfig

PIPELINE_NAME = "movielens-memory-efficient"

# The project root (the folder holding setup.py) when running from a checkout.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The raw data schema (ImportSchemaGen) is package data of this package, so it
# is found beside this module in a checkout and in an installed wheel alike.
SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")

# ExampleGen's hash split: 17 of 20 buckets train, 3 eval (85/15, as the
# keras-io example splits MovieLens).
TRAIN_BUCKETS = 17
EVAL_BUCKETS = 3

# Node ids of the optional full-model comparison (``compare_full_model``).
FULL_MODEL_TRAINER_ID = "full_model_trainer"
COMPRESSION_EVALUATOR_ID = "compression_evaluator"
LATEST_BLESSED_MODEL_RESOLVER_ID = "latest_blessed_model_resolver"
# Either the fresh-process check or TFX's InfraValidator; one id, so the
# summary finds the push's other blessing under one name.
SERVING_CHECK_ID = "ServingCheck"

# A TensorFlow Serving image of the TensorFlow the model is trained with.
DEFAULT_TF_SERVING_IMAGE = "tensorflow/serving:2.16.1"

# Module paths of the installed package: components load these by import, so
# no module file is packaged per run, locally or in a container.
PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "trainer.task.run_fn"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """When the Evaluator blesses a model.

    Attributes:
      rmse_upper_bound: absolute bound on eval RMSE; a model above it is never
        blessed.
      rmse_max_increase: largest eval-RMSE increase over the latest blessed
        model still blessed. A retrain on the same data lands within a few
        thousandths of the previous RMSE, so a zero tolerance would reject
        equally good models by noise.
      min_gain_over_mean: least relative RMSE gain over predicting the eval
        split's mean rating (``1 - RMSE / std of the ratings``) a blessed model
        must show. An untrained or collapsed model predicts a constant and
        gains about 0, whatever the absolute bound allows; a trained model on
        MovieLens gains well over a tenth.
      slicing_features: transformed features the Evaluator slices the eval
        split on, each on its own, besides the overall slice. The thresholds
        apply to the overall slice only; slices are for analysis.
    """

    rmse_upper_bound: float = 1.2
    rmse_max_increase: float = 0.01
    min_gain_over_mean: float = 0.02
    slicing_features: tuple[str, ...] = features.SLICING_FEATURES


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything ``create_pipeline`` needs.

    Attributes:
      data_root: the ratings for ExampleGen: a folder of ratings files or one
        file, in a GroupLens format or ``user_id,movie_id,rating`` CSV.
      output_root: folder for pipeline artifacts, ML Metadata and the pushed
        models (each in its own sub-folder, see the properties below).
      model: the model and training settings for the Trainer.
      evaluation: blessing thresholds and slices for the Evaluator.
      compare_full_model: also train the same model with full-size tables
        (``full_model_trainer``) and evaluate the model against it
        (``compression_evaluator``), so the cost of compression shows per
        slice. That Evaluator has no thresholds and blesses nothing.
      beam_pipeline_args: extra Beam flags (the local run adds DirectRunner
        settings).
      parallel_step_beam_args: Beam flags for StatisticsGen and Transform
        only, after ``beam_pipeline_args`` (the local run's ``beam_plan``:
        worker processes on large data).
      evaluator_beam_args: the same for the Evaluators (``beam_plan`` keeps
        them in-process on the largest data).
      enable_cache: reuse a component's earlier outputs when its inputs and
        settings are unchanged.
      schema_dir: folder holding schema.pbtxt as the ImportSchemaGen executor
        sees it (inside the image when running on Kubeflow / Vertex AI).
      vertex_training: when set, the Trainer runs as a Vertex AI custom job
        with these ``custom_config`` entries (``cloud.vertex_training_config``).
      vertex_serving: when set, the Pusher deploys to a Vertex AI Endpoint with
        this ``custom_config`` (``cloud.vertex_serving_config``) instead of
        copying to ``serving_model_dir``.
      compare_with_latest_blessed: the Evaluator also compares the candidate
        with the latest blessed model, found by a Resolver node. Open-source
        Kubeflow Pipelines v2 runs no resolver, so its spec turns this off and
        blesses on the absolute thresholds alone.
      tf_serving_image: when set (``image:tag``), TFX's InfraValidator serves
        the candidate from this TensorFlow Serving image in the local Docker
        engine before the push; otherwise ``ServingCheck`` loads it the same
        way in a fresh process (no Docker needed).
    """

    data_root: str
    output_root: str
    pipeline_name: str = PIPELINE_NAME
    # The runners' default, so a config built without one compiles what users run.
    model: ModelConfig = model_config.preset(model_config.DEFAULT_MODEL)
    evaluation: EvalSettings = EvalSettings()
    compare_full_model: bool = False
    beam_pipeline_args: list[str] | None = None
    parallel_step_beam_args: list[str] | None = None
    evaluator_beam_args: list[str] | None = None
    enable_cache: bool = True
    schema_dir: str = SCHEMA_DIR
    vertex_training: dict[str, Any] | None = None
    vertex_serving: dict[str, Any] | None = None
    compare_with_latest_blessed: bool = True
    tf_serving_image: str | None = None

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_root, "pipelines", self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_root, "metadata", self.pipeline_name, "metadata.db")

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_root, "serving_model", self.pipeline_name)


def code_fingerprint(folders: list[str] | None = None) -> str:
    """A hash of the code the components import by module path.

    TFX's cache keys on a component's settings, and the code is referenced
    by module path (``trainer.task.run_fn``), a string that stays the same
    when the code behind it changes: without this, a run after an upgrade
    would reuse the Transform graph and the model of the old code. Passed in
    the components' ``custom_config``, so changed code re-runs them.
    """
    import hashlib

    import components
    import trainer

    if folders is None:
        folders = [os.path.dirname(os.path.abspath(p.__file__)) for p in (components, trainer)]
    digest = hashlib.sha256()
    for folder in folders:
        for root, subfolders, names in sorted(os.walk(folder)):
            subfolders.sort()
            for name in sorted(names):
                if name.endswith(".py") and not name.endswith("_test.py"):
                    path = os.path.join(root, name)
                    digest.update(os.path.relpath(path, folder).encode())
                    with open(path, "rb") as f:
                        digest.update(f.read())
    return digest.hexdigest()[:16]


def full_table_model(model: ModelConfig) -> ModelConfig:
    """The model compression stands in for: the same training, plain full-size tables.

    Full size is the baseline preset's vector width (64), so a preset that
    also narrows the vectors (``md_16x`` trains 16-d tables) is compared with
    the full 64-d model it replaces, not with a full 16-d one.
    """
    return model.replace(
        name=f"{model.name}_full_tables",
        embedding_dim=SEED_BASELINE.embedding_dim,
        user_embedding={"type": "full"},
        movie_embedding={"type": "full"},
    )


def local_beam_pipeline_args() -> list[str]:
    """Beam settings for one machine: the DirectRunner's in-process engine.

    ``FnApiRunner`` is the engine Beam's DirectRunner runs batch pipelines
    on. Naming it directly skips the DirectRunner's first attempt at the
    Prism runner, which downloads a Prism binary (and fails offline) and
    stages an sdist of this package for every Beam component.
    ``in_memory`` beats ``multi_processing`` on small data: worker processes
    each import TensorFlow first (``beam_plan`` adds workers on large data).
    Naming ``--setup_file`` stops TFX from building a throwaway ~50 MB sdist
    of itself in /tmp for every Beam component; the
    in-process runner stages nothing, so the file is only named, never built.
    """
    return [
        "--runner=FnApiRunner",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
        f"--setup_file={os.path.join(PROJECT_ROOT, 'setup.py')}",
    ]
