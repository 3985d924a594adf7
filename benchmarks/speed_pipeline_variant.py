"""Runs ``local_runner.py`` with one speed lever applied in-process.

Each lever is a change someone would make in the pipeline's own files; this
applies it by patching those modules before ``local_runner.main`` runs, so
it can be measured without editing them. The lever and the file it stands
for:

* ``beam_multi_threading``: ``pipeline/configs.py``
  ``local_beam_pipeline_args``: ``--direct_running_mode=multi_threading
  --direct_num_workers=<nproc>`` instead of in_memory with one worker.
* ``transform_without_statistics``: ``pipeline/pipeline.py``: the Transform
  component built with ``disable_statistics=True`` (no pre- and
  post-transform TFDV statistics; nothing downstream reads them).
* ``trainer_batch_1024``: ``trainer/model_config.py``: the default preset's
  batch size 1024 with its learning rate times ``--lr-scale``.
* ``trainer_in_memory``: ``trainer/task.py`` ``input_dataset``: each split is
  read once through the same TFXIO reader into in-memory tensors, then every
  epoch reshuffles the row numbers and gathers whole batches, instead of
  decoding the TFRecords again every epoch.

    python -m benchmarks.speed_pipeline_variant --variant NAME -- [local_runner.py flags]
"""

from __future__ import annotations

import argparse
import os
import sys

VARIANTS = (
    "beam_multi_threading",
    "transform_without_statistics",
    "trainer_batch_1024",
    "trainer_in_memory",
)
# Rows per batch of the one pass that loads a split into memory.
LOAD_BATCH_SIZE = 65_536


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


def use_transform_without_statistics() -> None:
    from tfx import v1 as tfx

    transform_class = tfx.components.Transform

    def transform_without_statistics(**kwargs):
        return transform_class(disable_statistics=True, **kwargs)

    tfx.components.Transform = transform_without_statistics


def use_trainer_batch(batch_size: int, lr_scale: float) -> None:
    from trainer import model_config

    name = model_config.DEFAULT_MODEL
    config = model_config.PRESETS[name]
    model_config.PRESETS[name] = config.replace(
        batch_size=batch_size, learning_rate=config.learning_rate * lr_scale
    )


def use_in_memory_trainer_input() -> None:
    import tensorflow as tf

    from trainer import task

    read_split = task.input_dataset

    def in_memory_dataset(
        file_pattern, data_accessor, tf_transform_output, batch_size, shuffle, seed, shuffle_buffer
    ):
        one_pass = read_split(
            file_pattern, data_accessor, tf_transform_output, LOAD_BATCH_SIZE, False, seed, 1
        )
        feature_batches, label_batches = [], []
        for features, label in one_pass:
            feature_batches.append(features)
            label_batches.append(label)
        columns = {k: tf.concat([f[k] for f in feature_batches], 0) for k in feature_batches[0]}
        labels = tf.concat(label_batches, 0)
        num_rows = int(labels.shape[0])
        rows = tf.data.Dataset.range(num_rows)
        if shuffle:
            rows = rows.shuffle(num_rows, seed=seed, reshuffle_each_iteration=True)

        def gather(indices):
            return {k: tf.gather(v, indices) for k, v in columns.items()}, tf.gather(
                labels, indices
            )

        return rows.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)

    task.input_dataset = in_memory_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument(
        "--lr-scale", type=float, default=8.0, help="learning-rate factor for trainer_batch_1024"
    )
    parser.add_argument("runner_args", nargs=argparse.REMAINDER, help="-- then local_runner flags")
    args = parser.parse_args(argv)
    runner_args = args.runner_args[1:] if args.runner_args[:1] == ["--"] else args.runner_args
    if args.variant == "beam_multi_threading":
        use_multi_threading_beam()
    elif args.variant == "transform_without_statistics":
        use_transform_without_statistics()
    elif args.variant == "trainer_batch_1024":
        use_trainer_batch(1024, args.lr_scale)
    else:
        use_in_memory_trainer_input()
    import local_runner

    return local_runner.main(runner_args)


if __name__ == "__main__":
    sys.exit(main())
