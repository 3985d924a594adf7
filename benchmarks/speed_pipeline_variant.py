"""Runs ``local_runner.py`` with one speed lever changed in-process.

Most variants undo a lever the pipeline now has, so the run shows what that
lever buys; two try a change the pipeline does not make. Each patches the
module the lever lives in before ``local_runner.main`` runs, so nothing is
edited. The variants and the files they stand for:

Levers in the pipeline, undone:

* ``stock_csv_example_gen``: ``pipeline/pipeline.py``: TFX's CsvExampleGen
  (Beam, row by row) instead of ``components/arrow_csv_example_gen.py``.
* ``exact_statistics``: ``pipeline/pipeline.py``: StatisticsGen with exact
  top values and uniques instead of sketches.
* ``transform_statistics``: ``pipeline/pipeline.py``: Transform computes its
  pre- and post-transform statistics (``disable_statistics=False``).
* ``transform_materialize``: ``pipeline/pipeline.py``: Transform also writes
  transformed copies of the examples (``materialize=True``; nothing reads them).
* ``streamed_trainer_input``: ``trainer/model_config.py``: the default
  preset with ``input_in_memory=False`` (TFRecords decoded and transformed
  every epoch).
* ``one_step_per_execution``: ``trainer/task.py``: ``STEPS_PER_EXECUTION = 1``.
* ``tfma_native_metrics``: ``pipeline/pipeline.py``: TFMA's own
  MeanSquaredError, MeanAbsoluteError, MeanLabel and MeanPrediction (one
  combiner each) beside the RMSE, instead of ``components/metrics.py``'s
  shared pass.
* ``tfx_v1_import``: ``from tfx import v1`` before the run, as the
  pipeline's modules did (it also imports the Google Cloud extensions).

Changes not made:

* ``beam_multi_threading``: ``pipeline/configs.py`` ``local_beam_pipeline_args``:
  ``--direct_running_mode=multi_threading --direct_num_workers=<nproc>``.
* ``trainer_batch_1024``: ``trainer/model_config.py``: the default preset's
  batch size 1024 with its learning rate times ``--lr-scale``.

    python -m benchmarks.speed_pipeline_variant --variant NAME -- [local_runner.py flags]
"""

from __future__ import annotations

import argparse
import os
import sys


def use_multi_threading_beam() -> None:
    from pipeline import configs

    in_memory_args = configs.local_beam_pipeline_args()
    workers = len(os.sched_getaffinity(0))

    def multi_threading_args():
        kept = [
            a
            for a in in_memory_args
            if not a.startswith(("--direct_running_mode", "--direct_num_workers"))
        ]
        return kept + ["--direct_running_mode=multi_threading", f"--direct_num_workers={workers}"]

    configs.local_beam_pipeline_args = multi_threading_args


def _with_arguments(component_name: str, **overrides) -> None:
    """Builds ``pipeline.pipeline``'s ``component_name`` with ``overrides`` forced."""
    from pipeline import pipeline as pipeline_lib

    component_class = getattr(pipeline_lib, component_name)

    def build(**kwargs):
        return component_class(**{**kwargs, **overrides})

    setattr(pipeline_lib, component_name, build)


def use_stock_csv_example_gen() -> None:
    from tfx.components import CsvExampleGen

    from pipeline import pipeline as pipeline_lib

    pipeline_lib.ArrowCsvExampleGen = CsvExampleGen


def use_tfma_native_metrics() -> None:
    from components import metrics
    from pipeline import pipeline as pipeline_lib

    pipeline_lib._PER_SLICE_METRICS = (  # pylint: disable=protected-access
        ("ExampleCount", None),
        ("MeanSquaredError", None),
        ("MeanAbsoluteError", None),
        (metrics.RatingRootMeanSquaredError.__name__, metrics.__name__),
        ("MeanLabel", None),
        ("MeanPrediction", None),
    )


def use_default_preset(**changes) -> None:
    from trainer import model_config

    name = model_config.DEFAULT_MODEL
    model_config.PRESETS[name] = model_config.PRESETS[name].replace(**changes)


def use_trainer_batch(batch_size: int, lr_scale: float) -> None:
    from trainer import model_config

    config = model_config.PRESETS[model_config.DEFAULT_MODEL]
    use_default_preset(batch_size=batch_size, learning_rate=config.learning_rate * lr_scale)


def use_one_step_per_execution() -> None:
    from trainer import task

    task.STEPS_PER_EXECUTION = 1


def use_tfx_v1_import() -> None:
    from tfx import v1  # noqa: F401  pylint: disable=unused-import


VARIANTS = {
    "stock_csv_example_gen": use_stock_csv_example_gen,
    "exact_statistics": lambda: _with_arguments("StatisticsGen", stats_options=None),
    "transform_statistics": lambda: _with_arguments("Transform", disable_statistics=False),
    "transform_materialize": lambda: _with_arguments("Transform", materialize=True),
    "streamed_trainer_input": lambda: use_default_preset(input_in_memory=False),
    "one_step_per_execution": use_one_step_per_execution,
    "tfma_native_metrics": use_tfma_native_metrics,
    "tfx_v1_import": use_tfx_v1_import,
    "beam_multi_threading": use_multi_threading_beam,
    "trainer_batch_1024": None,  # needs --lr-scale; applied in main
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    parser.add_argument(
        "--lr-scale", type=float, default=8.0, help="learning-rate factor for trainer_batch_1024"
    )
    parser.add_argument("runner_args", nargs=argparse.REMAINDER, help="-- then local_runner flags")
    args = parser.parse_args(argv)
    runner_args = args.runner_args[1:] if args.runner_args[:1] == ["--"] else args.runner_args
    if args.variant == "trainer_batch_1024":
        use_trainer_batch(1024, args.lr_scale)
    else:
        VARIANTS[args.variant]()
    import local_runner

    return local_runner.main(runner_args)


if __name__ == "__main__":
    sys.exit(main())
