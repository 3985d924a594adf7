"""Ids with spaces, unicode or great length: one index each, in Transform and serving alike."""

import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils

from components import features
from components import preprocessing
from conftest import raw_row

UNUSUAL_USERS = ["user_with space", "user_ünïcødé_用户", "user_" + "x" * 2000, "user_a b  c"]


def test_unusual_ids_get_their_own_index_in_transform_and_serving(tmp_path):
    raw_spec = {
        "user_id": tf.io.FixedLenFeature([1], tf.string),
        "movie_id": tf.io.FixedLenFeature([1], tf.string),
        "rating": tf.io.FixedLenFeature([1], tf.float32),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    # Distinct frequencies (4, 3, 2, 1) fix the expected ranks.
    train = [
        raw_row(user, "movie_1", 3.0)
        for rank, user in enumerate(UNUSUAL_USERS)
        for _ in range(len(UNUSUAL_USERS) - rank)
    ]
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=tmp_path)):
        (transformed, _), transform_fn = (train, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing.preprocessing_fn
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path))
    metadata_io.write_metadata(metadata, os.path.join(tmp_path, "metadata"))

    first_index = {}
    for row, out in zip(train, transformed, strict=False):
        first_index.setdefault(row["user_id"][0].decode(), int(out[features.USER_INDEX]))
    assert first_index == {user: rank for rank, user in enumerate(UNUSUAL_USERS)}

    # The serving path (the Transform layer on parsed tf.Examples) agrees.
    layer = tft.TFTransformOutput(str(tmp_path)).transform_features_layer()
    served = layer(
        {
            "user_id": tf.constant([[u.encode()] for u in UNUSUAL_USERS]),
            "movie_id": tf.constant([[b"movie_1"]] * len(UNUSUAL_USERS)),
        }
    )
    np.testing.assert_array_equal(
        served[features.USER_INDEX].numpy().ravel(), np.arange(len(UNUSUAL_USERS))
    )
