"""ArrowCsvExampleGen: every row lands in exactly one split, typed as CsvExampleGen types it."""

import gzip
import json

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components import arrow_csv_example_gen
from components.arrow_csv_example_gen import ArrowCsvExampleGen
from components.arrow_csv_example_gen import CsvFormatError
from components.arrow_csv_example_gen import Executor

SPLITS = (("train", 17), ("eval", 3))


def _run(input_base, output_dir, splits=SPLITS):
    component = ArrowCsvExampleGen(
        input_base=str(input_base),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in splits
                ]
            )
        ),
    )
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    # The component holds its configs as JSON, as the executor receives them.
    Executor().Do(
        {}, {standard_component_specs.EXAMPLES_KEY: [examples]}, dict(component.exec_properties)
    )
    return examples


def _read_split(examples, split):
    pattern = f"{examples.uri}/Split-{split}/*"
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    return [tf.train.Example.FromString(record.numpy()) for record in dataset]


def _value(example, name):
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    return kind, values


def _ratings_csv(path, rows, header="user_id,movie_id,rating"):
    path.write_text(header + "\n" + "".join(f"{row}\n" for row in rows))


def test_every_row_lands_in_exactly_one_split_with_csv_example_gen_types(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"user_{i % 97},movie_{i % 31},{1 + i % 5}.0" for i in range(2000)]
    _ratings_csv(data / "ratings.csv", rows)

    examples = _run(data, tmp_path / "out")

    assert json.loads(examples.split_names) == ["train", "eval"]
    split_rows = {split: _read_split(examples, split) for split in ("train", "eval")}
    seen = sorted(
        ",".join(
            [
                _value(e, "user_id")[1][0].decode(),
                _value(e, "movie_id")[1][0].decode(),
                f"{_value(e, 'rating')[1][0]:.1f}",
            ]
        )
        for split in split_rows.values()
        for e in split
    )
    assert seen == sorted(rows)
    # 3 of 20 buckets: about 15% eval.
    assert 0.10 < len(split_rows["eval"]) / len(rows) < 0.20
    first = split_rows["train"][0]
    assert _value(first, "user_id")[0] == "bytes_list"
    assert _value(first, "rating")[0] == "float_list"


def test_split_depends_on_the_row_not_on_blocks_or_files(tmp_path, monkeypatch):
    rows = [f"user_{i},movie_{i % 13},4.0" for i in range(3000)]
    one_file = tmp_path / "one"
    one_file.mkdir()
    _ratings_csv(one_file / "ratings.csv", rows)
    two_files = tmp_path / "two"
    two_files.mkdir()
    _ratings_csv(two_files / "a.csv", rows[:1000])
    _ratings_csv(two_files / "b.csv", rows[1000:])

    whole = _run(one_file, tmp_path / "whole")
    monkeypatch.setattr(arrow_csv_example_gen, "READ_BLOCK_BYTES", 4096)
    pieces = _run(two_files, tmp_path / "pieces")

    def users(examples, split):
        return sorted(_value(e, "user_id")[1][0] for e in _read_split(examples, split))

    for split in ("train", "eval"):
        assert users(whole, split) == users(pieces, split)


def test_integer_columns_and_empty_cells_are_typed_like_csv_example_gen(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _ratings_csv(
        data / "ratings.csv",
        ["user_1,movie_1,4.0,881250949", "user_2,,3.5,"],
        header="user_id,movie_id,rating,timestamp",
    )

    examples = _run(data, tmp_path / "out", splits=(("all", 1),))

    by_user = {_value(e, "user_id")[1][0]: e for e in _read_split(examples, "all")}
    assert _value(by_user[b"user_1"], "timestamp") == ("int64_list", [881250949])
    assert _value(by_user[b"user_2"], "timestamp")[1] == []
    assert _value(by_user[b"user_2"], "movie_id")[1] == []
    assert _value(by_user[b"user_2"], "rating") == ("float_list", [3.5])


def test_a_file_with_other_columns_is_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _ratings_csv(data / "a.csv", ["user_1,movie_1,4.0"])
    _ratings_csv(data / "b.csv", ["user_1,movie_1"], header="user_id,movie_id")

    with pytest.raises(CsvFormatError, match=r"b\.csv: columns \['user_id', 'movie_id'\] differ"):
        _run(data, tmp_path / "out")


def test_a_row_that_does_not_parse_is_reported_with_its_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _ratings_csv(data / "ratings.csv", ["user_1,movie_1,4.0", "user_2,movie_2,4.0,extra"])

    with pytest.raises(CsvFormatError, match=r"ratings\.csv: .*Expected 3 columns, got 4"):
        _run(data, tmp_path / "out")


def test_a_gzipped_file_is_not_mistaken_for_text(tmp_path):
    # CsvExampleGen reads plain text only; a compressed file is an error, not noise.
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.csv").write_bytes(gzip.compress(b"user_id,movie_id,rating\nu,m,4.0\n"))

    with pytest.raises(CsvFormatError, match=r"ratings\.csv"):
        _run(data, tmp_path / "out")


def test_no_input_files_is_an_error_naming_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        _run(tmp_path / "empty", tmp_path / "out")


def test_only_hash_bucket_splits_of_one_input_are_accepted():
    two_inputs = example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name="train", pattern="train/*"),
            example_gen_pb2.Input.Split(name="eval", pattern="eval/*"),
        ]
    )
    with pytest.raises(ValueError, match="one input split"):
        arrow_csv_example_gen.split_buckets(two_inputs, example_gen_pb2.Output())
