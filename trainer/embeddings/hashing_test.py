"""The hashing trick: sizes from a bucket count or a compression ratio, id mod buckets."""

import keras
import numpy as np
import pytest

from trainer import embeddings
from trainer.embeddings import hashing
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import Vocabulary


def _table(spec, ids=99, num_oov=1, output_dim=8):
    notes = []
    table = embeddings.parse(spec, output_dim).resolve(
        Vocabulary.of(np.arange(ids, 0, -1), num_oov), output_dim, notes
    )
    return table, notes


def test_a_compression_ratio_sets_the_buckets_from_the_table_size():
    table, notes = _table({"type": "hash", "compression": 64}, ids=9_999)
    assert isinstance(table, hashing.HashedTable) and not notes
    assert table.num_buckets == 10_000 // 64  # floor: a budget is a ceiling
    assert table.params == 156 * 8


def test_a_bucket_count_no_smaller_than_the_table_is_a_plain_table_with_a_note():
    table, notes = _table({"type": "hash", "num_buckets": 500}, ids=99)
    assert type(table).__name__ == "PlainTable" and table.input_dim == 100
    assert notes and "plain table" in notes[0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "hash"}, "exactly one of num_buckets, compression"),
        ({"type": "hash", "num_buckets": 4, "compression": 8}, "exactly one"),
        ({"type": "hash", "num_buckets": 0}, "num_buckets must be an integer >= 1"),
        ({"type": "hash", "compression": 1}, "compression must be a number > 1"),
        ({"type": "hash", "buckets": 4}, "unknown key 'buckets'"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        embeddings.parse(spec, 8)


def test_ids_share_the_row_of_their_remainder_and_the_layer_reloads():
    layer = embeddings.build_embedding(
        {"type": "hash", "num_buckets": 3}, [5, 4, 3, 2, 1], 1, 4, "h"
    )
    ids = np.array([[0], [3], [1], [4], [5]])
    vectors = keras.ops.convert_to_numpy(layer(ids))
    assert vectors.shape == (5, 4)
    np.testing.assert_array_equal(vectors[0], vectors[1])  # 0 and 3: bucket 0
    np.testing.assert_array_equal(vectors[2], vectors[3])  # 1 and 4: bucket 1
    assert not np.array_equal(vectors[0], vectors[2])
    restored = type(layer).from_config(layer.get_config())
    restored.build()
    restored.set_weights(layer.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(ids)), vectors)
    report = embeddings.embedding_memory_report({"user_id": layer}, 4)
    assert report["features"]["user_id"]["params"] == 3 * 4
    assert report["features"]["user_id"]["compression"] == pytest.approx(6 / 3)
