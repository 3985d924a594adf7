"""ExampleGen for ratings files: reads the user's files in byte ranges, as Beam work.

The input is every file under ``input_base`` that the input pattern matches,
each in a format of ``components.movielens.FORMATS`` (GroupLens ``u.data``,
``ratings.dat``, ``ratings.csv``, or a ``user_id,movie_id,rating`` CSV), all
in one format. ``input_base`` may also name one local file, e.g. ``u.data``
in a MovieLens folder that holds other files.

The executor reads only each file's size and header; the rest is a Beam
pipeline, so Dataflow spreads it over workers:

1. ``Create`` the ``(file, start, end)`` ranges of ``RANGE_BYTES`` and
   ``Reshuffle`` them to the workers.
2. For each range (``_WriteRange``): read the whole lines that start in it,
   parse and check them (``movielens.parse_range``: Arrow, vectorised),
   encode ``tf.Example``s (``user_id`` and ``movie_id`` bytes, ``rating``
   float), send each row to the split its content hashes to, and write one
   gzipped TFRecord shard per split. A shard is written under a temporary
   name and then renamed, so a retried range replaces it whole.
3. Each range reports its rows per split, or its first bad line, to a
   summary file the executor reads after the pipeline.

The executor then raises the earliest bad line (by file and line) as
``movielens.RatingsFormatError``, a file set without ratings likewise, and
``movielens.TooFewRatingsError`` when a split is empty (a small file can
hash wholly into one): each names what the user must fix.

A row's split is the farmhash fingerprint of ``user_id``, ``movie_id`` and
the rating's text (Arrow's, of the rating as this project's CSV writes it)
joined by ``\\x1f``, modulo the total of the hash buckets: it depends on the
row's content only, not on its position, file, range or format, and it is
the split the previous, single-process ExampleGen gave the same row.
"""

import glob
import json
import os
import uuid
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import features
from components import movielens

# Bytes of a file per unit of Beam work (read by tests at run time).
RANGE_BYTES = movielens.RANGE_BYTES
# Shards and range summaries are written here, inside the output artifact,
# and removed once the executor has read them.
_WORK_DIR = ".work"
_SUMMARIES = "summaries"
# zlib's fastest level: writing the examples costs a third of the default's
# time for files about a sixth larger.
_COMPRESSION = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Plans the ranges, runs the Beam pipeline, checks what it found."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        del input_dict
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
        )
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
        )
        split_names, bucket_edges = split_buckets(input_config, output_config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        layouts = file_layouts(input_files(input_base, input_config.splits[0].pattern))
        ranges = [
            (file_index, start, end)
            for file_index, layout in enumerate(layouts)
            for start, end in movielens.byte_ranges(layout, RANGE_BYTES)
        ]

        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        examples.split_names = artifact_utils.encode_split_names(split_names)
        split_dirs = [artifact_utils.get_split_uri([examples], name) for name in split_names]
        work_dir = os.path.join(examples.uri, _WORK_DIR)
        for folder in [*split_dirs, work_dir]:
            tf.io.gfile.makedirs(folder)
        write = _WriteRange(layouts, split_dirs, bucket_edges, work_dir, len(ranges))
        try:
            with self._make_beam_pipeline() as pipeline:
                _ = (
                    pipeline
                    | "Ranges" >> beam.Create(list(enumerate(ranges)))
                    | "Distribute" >> beam.Reshuffle()
                    | "ParseAndWrite" >> beam.ParDo(write)
                    | "Summaries"
                    >> beam.io.WriteToText(
                        os.path.join(work_dir, _SUMMARIES), file_name_suffix=".jsonl"
                    )
                )
            summaries = _read_summaries(work_dir)
        finally:
            tf.io.gfile.rmtree(work_dir)
        if len(summaries) != len(ranges):
            raise RuntimeError(f"{len(summaries)} range summaries for {len(ranges)} ranges")
        buckets = [(split.name, split.hash_buckets) for split in output_config.split_config.splits]
        counts = check_counts(summaries, layouts, split_names, buckets)
        logging.info(
            "ArrowCsvExampleGen wrote %s examples from %d ranges of %s",
            counts,
            len(ranges),
            ", ".join(layout.path for layout in layouts),
        )


class ArrowCsvExampleGen(example_gen_component.FileBasedExampleGen):
    """Ratings files to split ``tf.Example``s, parsed in Beam (see the module docstring)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        output_config: example_gen_pb2.Output | None = None,
        input_config: example_gen_pb2.Input | None = None,
    ):
        if input_config is None and os.path.isfile(input_base):
            # One file of a folder: the driver fingerprints what the pattern matches.
            input_config = example_gen_utils.make_default_input_config(
                glob.escape(os.path.basename(input_base))
            )
            input_base = os.path.dirname(os.path.abspath(input_base))
        super().__init__(
            input_base=input_base, input_config=input_config, output_config=output_config
        )


def split_buckets(
    input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output
) -> tuple[list[str], np.ndarray]:
    """Output split names and the cumulative bucket edge of each.

    Only the configuration this component implements is accepted: one input
    split, divided by hash buckets (no ``partition_feature_name``).
    """
    if len(input_config.splits) != 1:
        raise ValueError(
            "ArrowCsvExampleGen reads one input split and divides it by hash buckets; "
            f"got {len(input_config.splits)} input splits"
        )
    split_config = output_config.split_config
    if split_config.partition_feature_name:
        raise ValueError("ArrowCsvExampleGen does not split by partition_feature_name")
    # The component fills in TFX's default (train 2 / eval 1 buckets) when
    # no output splits are given.
    names = example_gen_utils.generate_output_split_names(input_config, output_config)
    edges = np.cumsum([split.hash_buckets for split in split_config.splits])
    return names, edges


def input_files(input_base: str, pattern: str) -> list[str]:
    files = sorted(
        path
        for path in tf.io.gfile.glob(os.path.join(input_base, pattern))
        if not tf.io.gfile.isdir(path)
    )
    if not files:
        raise FileNotFoundError(f"No input files match {os.path.join(input_base, pattern)}")
    return files


def _open_gfile(path: str):
    return tf.io.gfile.GFile(path, "rb")


def file_layouts(files: list[str]) -> list[movielens.FileLayout]:
    """Each file's format, header and size: the only reading outside Beam."""
    layouts = []
    for path in files:
        if "://" not in path:
            movielens.check_regular_file(path)  # a FIFO would block the read below
        layout = movielens.ratings_layout(
            path, open_binary=_open_gfile, size=tf.io.gfile.stat(path).length
        )
        if layouts and layout.spec != layouts[0].spec:
            raise movielens.RatingsFormatError(
                path,
                f"is in the {layout.spec.name} format ({layout.spec.description}) but "
                f"{layouts[0].path} is in the {layouts[0].spec.name} format; the files read "
                "together must share one format",
            )
        layouts.append(layout)
    return layouts


class _WriteRange(beam.DoFn):
    """One range's lines to split shards; yields its summary as a JSON line."""

    def __init__(
        self,
        layouts: list[movielens.FileLayout],
        split_dirs: list[str],
        bucket_edges: np.ndarray,
        work_dir: str,
        num_ranges: int,
    ):
        self._layouts = layouts
        self._split_dirs = split_dirs
        self._bucket_edges = bucket_edges
        self._work_dir = work_dir
        self._num_ranges = num_ranges
        self._encoder = None

    def setup(self):
        from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top

        self._encoder = example_coder.RecordBatchToExamplesEncoder()

    def process(self, element):
        index, (file_index, start, end) = element
        layout = self._layouts[file_index]
        summary = {"file": file_index, "start": start, "rows": [0] * len(self._split_dirs)}
        try:
            data, offset = movielens.read_range(layout, start, end, _open_gfile)
            rows = movielens.parse_range(layout, data, offset, _open_gfile)
        except movielens.RatingsFormatError as error:
            summary["error"] = {
                "path": error.path,
                "problem": error.problem,
                "line": error.line,
                "field": error.field,
            }
            yield json.dumps(summary)
            return
        if len(rows):
            splits = split_of_rows(rows, self._bucket_edges)
            summary["rows"] = self._write(index, encode_examples(rows, self._encoder), splits)
        yield json.dumps(summary)

    def _write(self, index: int, serialized: list[bytes], splits: np.ndarray) -> list[int]:
        temporary = [
            os.path.join(self._work_dir, f"{index:05d}-{split}-{uuid.uuid4().hex}.gz")
            for split in range(len(self._split_dirs))
        ]
        writers = {}
        for record, split in zip(serialized, splits.tolist(), strict=True):
            writer = writers.get(split)
            if writer is None:
                writer = writers[split] = tf.io.TFRecordWriter(temporary[split], _COMPRESSION)
            writer.write(record)
        for split, writer in writers.items():
            writer.close()
            shard = f"data_tfrecord-{index:05d}-of-{self._num_ranges:05d}.gz"
            tf.io.gfile.rename(
                temporary[split], os.path.join(self._split_dirs[split], shard), overwrite=True
            )
        return np.bincount(splits, minlength=len(self._split_dirs)).tolist()


def encode_examples(rows: movielens.RangeRows, encoder) -> list[bytes]:
    """Serialized ``tf.Example``s, one per row: the ids as bytes, the rating as a float."""
    one_each = pa.array(np.arange(len(rows) + 1, dtype=np.int32))
    columns = [rows.user_ids, rows.movie_ids, pa.array(rows.ratings, pa.float32())]
    return encoder.encode(
        pa.RecordBatch.from_arrays(
            [pa.ListArray.from_arrays(one_each, values) for values in columns],
            [features.USER_ID, features.MOVIE_ID, features.RATING],
        )
    )


def split_of_rows(rows: movielens.RangeRows, bucket_edges: np.ndarray) -> np.ndarray:
    """Each row's split: the hash of its content, over the cumulative bucket edges.

    Not the serialized example: the encoder writes an example's feature map
    in no fixed order, so the same row can serialize to different bytes.
    """
    # The rating as the earlier ExampleGen saw it: written as this project's
    # CSV writes it, read back by Arrow as a double, cast to text ("4", "3.5").
    texts = [float(movielens.format_rating(value)) for value in rows.rating_values]
    rating_texts = pa.array(texts, pa.float64()).cast(pa.string()).cast(pa.binary())
    keys = pc.binary_join_element_wise(
        rows.user_ids,
        rows.movie_ids,
        rating_texts.take(pa.array(rows.rating_codes)),
        pa.scalar(b"\x1f", pa.binary()),
    )
    buckets = tf.strings.to_hash_bucket_fast(
        keys.to_numpy(zero_copy_only=False), int(bucket_edges[-1])
    ).numpy()
    return np.searchsorted(bucket_edges, buckets, side="right")


def _read_summaries(work_dir: str) -> list[dict]:
    summaries = []
    for path in tf.io.gfile.glob(os.path.join(work_dir, _SUMMARIES + "*")):
        with tf.io.gfile.GFile(path) as handle:
            summaries.extend(json.loads(line) for line in handle if line.strip())
    return summaries


def check_counts(
    summaries: list[dict],
    layouts: list[movielens.FileLayout],
    split_names: list[str],
    buckets: list[tuple[str, int]],
) -> dict[str, int]:
    """Examples per split; raises what the ranges found wrong, the earliest line first."""
    errors = [summary for summary in summaries if "error" in summary]
    if errors:
        first = min(errors, key=lambda summary: (summary["file"], summary["start"]))["error"]
        raise movielens.RatingsFormatError(
            first["path"], first["problem"], line=first["line"], field=first["field"]
        )
    counts = np.sum([summary["rows"] for summary in summaries], axis=0).tolist()
    if not sum(counts):
        if len(layouts) == 1:
            raise movielens.no_ratings_error(layouts[0])
        raise movielens.RatingsFormatError(
            os.path.dirname(layouts[0].path), f"no ratings in any of its {len(layouts)} files"
        )
    sizes = dict(zip(split_names, counts, strict=True))
    if not all(counts):
        raise movielens.too_few_ratings_error(sizes, buckets)
    return sizes
