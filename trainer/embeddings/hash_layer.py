"""The hashing-trick layer (sizes: ``hashing.py``)."""

from typing import Any

import keras
from keras import ops

from trainer import row_sparse
from trainer.embeddings.ids import deserialized
from trainer.embeddings.ids import ids_output_shape
from trainer.embeddings.ids import prepare_ids


@keras.saving.register_keras_serializable(package="memrec")
class HashEmbedding(keras.layers.Layer):
    """Id ``i`` reads row ``i mod num_buckets`` of one ``num_buckets x output_dim`` table.

    Input: integer ids of shape ``[batch]`` or ``[batch, 1]``.
    Output: ``[batch, output_dim]``.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_buckets: int,
        embeddings_initializer=None,
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.num_buckets = map(
            int, (input_dim, output_dim, num_buckets)
        )
        # keras.layers.Embedding's default, so a row starts as a plain table's would.
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer or "uniform")
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="buckets",
            shape=(self.num_buckets, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )
        self.built = True

    def call(self, inputs, training=None):
        ids = prepare_ids(inputs, self.input_dim)
        return row_sparse.lookup(self.embeddings, ops.mod(ids, self.num_buckets), training)

    def compute_output_shape(self, input_shape):
        return ids_output_shape(input_shape, self.output_dim)

    def tables(self) -> list[dict[str, Any]]:
        """Tables for the memory report: ``[{"name", "rows", "dim"}]``."""
        return [{"name": "buckets", "rows": self.num_buckets, "dim": self.output_dim}]

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "num_buckets": self.num_buckets,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "embeddings_initializer", "embeddings_regularizer"))
