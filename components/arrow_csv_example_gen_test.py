"""ArrowCsvExampleGen: the user's files in byte ranges, as Beam work, to split examples."""

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components import arrow_csv_example_gen
from components import movielens
from components.arrow_csv_example_gen import ArrowCsvExampleGen
from components.arrow_csv_example_gen import Executor
from pipeline import configs

SPLITS = (("train", 17), ("eval", 3))


def _run(input_base, output_dir, splits=SPLITS, beam_args=()):
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
    context = Executor.Context(
        beam_pipeline_args=[*configs.local_beam_pipeline_args(), *beam_args],
        tmp_dir=str(output_dir) + "-tmp",
        unique_id="test",
    )
    # The component holds its configs as JSON, as the executor receives them.
    Executor(context).Do(
        {}, {standard_component_specs.EXAMPLES_KEY: [examples]}, dict(component.exec_properties)
    )
    return examples


def _rows(examples, split):
    """(user_id, movie_id, rating) of each example of a split, sorted."""
    pattern = f"{examples.uri}/Split-{split}/*"
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    rows = []
    for record in dataset:
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        assert sorted(feature) == ["movie_id", "rating", "user_id"]
        rows.append(
            (
                feature["user_id"].bytes_list.value[0].decode(),
                feature["movie_id"].bytes_list.value[0].decode(),
                feature["rating"].float_list.value[0],
            )
        )
    return sorted(rows)


def _folder(tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return folder


def _normalized(rows, header="user_id,movie_id,rating"):
    return header + "\n" + "".join(f"{row}\n" for row in rows)


def test_every_row_lands_in_exactly_one_split_with_the_schemas_types(tmp_path):
    rows = [f"user_{i % 97},movie_{i % 31},{1 + i % 5}.0" for i in range(2000)]
    data = _folder(tmp_path, "data", {"ratings.csv": _normalized(rows)})

    examples = _run(data, tmp_path / "out")

    assert json.loads(examples.split_names) == ["train", "eval"]
    split_rows = {split: _rows(examples, split) for split in ("train", "eval")}
    seen = sorted(f"{u},{m},{r:.1f}" for split in split_rows.values() for u, m, r in split)
    assert seen == sorted(rows)
    # 3 of 20 buckets: about 15% eval.
    assert 0.10 < len(split_rows["eval"]) / len(rows) < 0.20
    assert not list((tmp_path / "out").glob(".work*"))


def _old_example_gen_splits(csv_path, splits=SPLITS):
    """{(user, movie, rating): split} as the single-process ExampleGen cut a CSV.

    It inferred each column's type with Arrow and hashed the cells' text.
    """
    table = pa_csv.read_csv(
        str(csv_path),
        convert_options=pa_csv.ConvertOptions(strings_can_be_null=True, timestamp_parsers=[]),
    )
    cells = [pc.fill_null(column.cast(pa.string()), "") for column in table.columns]
    keys = pc.binary_join_element_wise(*cells, "\x1f").combine_chunks()
    keys = keys.to_numpy(zero_copy_only=False)
    edges = np.cumsum([buckets for _, buckets in splits])
    buckets = tf.strings.to_hash_bucket_fast(keys, int(edges[-1])).numpy()
    names = [name for name, _ in splits]
    return {
        (user, movie, np.float32(rating)): names[split]
        for user, movie, rating, split in zip(
            *(table.column(i).to_pylist() for i in range(3)),
            np.searchsorted(edges, buckets, side="right"),
            strict=True,
        )
    }


def test_each_row_keeps_the_split_the_previous_example_gen_gave_it(tmp_path):
    ratings = movielens.Ratings(
        [f"user_{i % 50}" for i in range(600)],
        [f"movie_{i % 37}" for i in range(600)],
        [0.5 * (1 + i % 10) for i in range(600)],
        source="test",
        format="normalized",
    )
    path = movielens.write_normalized_csv(ratings, tmp_path / "data" / "ratings.csv")
    expected = _old_example_gen_splits(path)

    examples = _run(path.parent, tmp_path / "out")

    for split in ("train", "eval"):
        for user, movie, rating in _rows(examples, split):
            assert expected[(user, movie, np.float32(rating))] == split


U_DATA = "".join(f"{u}\t{(u * 7) % 40}\t{1 + u % 5}\t88125{u}\n" for u in range(300))


def test_a_grouplens_file_gives_the_examples_and_splits_of_its_normalized_copy(tmp_path):
    grouplens = _folder(tmp_path, "ml-100k", {"u.data": U_DATA, "u.item": "not ratings\n"})
    copy = tmp_path / "copy"
    movielens.write_normalized_csv(movielens.read_ratings(grouplens), copy / "ratings.csv")

    # input_base naming one file reads that file only, not u.item beside it.
    direct = _run(grouplens / "u.data", tmp_path / "direct")
    normalized = _run(copy, tmp_path / "normalized")

    for split in ("train", "eval"):
        assert _rows(direct, split) == _rows(normalized, split)
    assert ("user_1", "movie_7", 2.0) in _rows(direct, "train") + _rows(direct, "eval")


def test_splits_depend_on_the_rows_not_on_ranges_files_or_workers(tmp_path, monkeypatch):
    rows = [f"user_{i},movie_{i % 13},4.0" for i in range(3000)]
    one_file = _folder(tmp_path, "one", {"ratings.csv": _normalized(rows)})
    two_files = _folder(
        tmp_path,
        "two",
        {"a.csv": _normalized(rows[:1000]), "b.csv": _normalized(rows[1000:])},
    )

    whole = _run(one_file, tmp_path / "whole")
    monkeypatch.setattr(arrow_csv_example_gen, "RANGE_BYTES", 4096)
    pieces = _run(
        two_files,
        tmp_path / "pieces",
        beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )

    for split in ("train", "eval"):
        assert _rows(whole, split) == _rows(pieces, split)
    # One shard per range and split: the ranges were separate work.
    assert len(list((tmp_path / "pieces" / "Split-train").iterdir())) > 10


def test_extra_columns_do_not_become_features(tmp_path):
    data = _folder(
        tmp_path,
        "data",
        {
            "ratings.csv": "rating,timestamp,movie_id,user_id\n"
            + "".join(f"4.5,88{i},movie_{i},user_{i}\n" for i in range(100))
        },
    )
    examples = _run(data, tmp_path / "out", splits=(("all", 1),))
    # _rows asserts each example holds user_id, movie_id and rating only.
    assert len(_rows(examples, "all")) == 100


def _format_error(input_base, output_dir, **kwargs) -> movielens.RatingsFormatError:
    with pytest.raises(movielens.RatingsFormatError) as caught:
        _run(input_base, output_dir, **kwargs)
    return caught.value


def test_the_earliest_bad_line_is_reported_with_file_line_and_field(tmp_path, monkeypatch):
    lines = [f"{i}::{i % 11}::{1 + i % 5}::9" for i in range(400)]
    lines[150] = "150::3::7::9"
    lines[390] = "390::::3::9"
    data = _folder(tmp_path, "ml-1m", {"ratings.dat": "\r\n".join(lines) + "\r\n"})
    monkeypatch.setattr(arrow_csv_example_gen, "RANGE_BYTES", 300)

    error = _format_error(data, tmp_path / "out")

    assert (error.path, error.line, error.field) == (str(data / "ratings.dat"), 151, "rating")
    assert str(error).startswith(f"{data / 'ratings.dat'}, line 151, field 'rating': rating 7 ")
    assert not list((tmp_path / "out").glob(".work*"))


def test_a_file_without_ratings_is_refused(tmp_path):
    data = _folder(tmp_path, "data", {"ratings.csv": "userId,movieId,rating,timestamp\n\n"})
    error = _format_error(data, tmp_path / "out")
    assert (
        str(error) == f"{data / 'ratings.csv'}: no ratings: the file has a header but no data rows"
    )


@pytest.mark.parametrize("rows", [["u1,m1,4.0"], ["u1,m1,4.0"] * 3])
def test_a_split_left_empty_is_refused_with_the_count(tmp_path, rows):
    # One rating always leaves a split empty; so do identical rows, which hash alike.
    data = _folder(tmp_path, "data", {"ratings.csv": _normalized(rows)})
    with pytest.raises(movielens.TooFewRatingsError) as caught:
        _run(data, tmp_path / "out")
    message = str(caught.value)
    assert "too few ratings to split into train and eval: " in message
    assert f"none of these {len(rows)} lands in" in message and "\n" not in message


def test_files_of_two_formats_are_refused_naming_both(tmp_path):
    data = _folder(
        tmp_path,
        "data",
        {"a.csv": _normalized(["u,m,4.0"]), "b.csv": "userId,movieId,rating,timestamp\n1,2,3,4\n"},
    )
    error = _format_error(data, tmp_path / "out")
    assert error.path == str(data / "b.csv") and str(data / "a.csv") in str(error)
    assert "one format" in str(error)


def test_a_header_without_the_columns_is_refused_before_any_range_is_read(tmp_path):
    data = _folder(tmp_path, "data", {"r.csv": "user_id,movie_id\nu,m\n"})
    error = _format_error(data, tmp_path / "out")
    assert (error.line, error.field) == (1, "rating")


def test_a_gzipped_file_is_not_mistaken_for_text(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.csv").write_bytes(gzip.compress(b"user_id,movie_id,rating\nu,m,4.0\n"))
    assert "is compressed (gzip)" in str(_format_error(data, tmp_path / "out"))


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
