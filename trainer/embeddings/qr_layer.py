"""The quotient-remainder layer (sizes and the digit scheme: ``qr.py``).

Default initialisation (when ``embeddings_initializer`` is None) keeps the
*combined* vector at the scale of a plain ``keras.layers.Embedding``, whose
default is ``uniform(-0.05, 0.05)`` (variance ``v = 0.05**2 / 3``):

* "mult": each table is ``uniform(-a, a)`` with ``a**2 / 3 = v**(1/k)``, so the
  product of k independent zero-mean factors has variance ``v``.  Both factors
  then receive gradients of the same size, unlike "one table near 1, the other
  near 0" schemes where the small factor learns slowly.
* "add": ``a = 0.05 / sqrt(k)`` so the sum of k factors has variance ``v``.
* "concat": ``a = 0.05`` (each column is an ordinary embedding column).

A user initializer, if given, is used as-is for every table (a fresh copy per
table, see ``ids.per_table_initializer``).
"""

import functools
import math
from typing import Any

import keras
from keras import ops

from trainer import row_sparse
from trainer.embeddings.ids import deserialized
from trainer.embeddings.ids import ids_output_shape
from trainer.embeddings.ids import per_table_initializer
from trainer.embeddings.ids import prepare_ids
from trainer.embeddings.qr import default_num_buckets
from trainer.embeddings.qr import qr_table_shapes

# keras.layers.Embedding's default initializer is uniform(-0.05, 0.05); the
# QR defaults are scaled so the combined vector matches its variance.
_PLAIN_UNIFORM_LIMIT = 0.05


@keras.saving.register_keras_serializable(package="memrec")
class QREmbedding(keras.layers.Layer):
    """Quotient-remainder embedding with k complementary partitions.

    Args:
      input_dim: number of ids, ``vocab_size + num_oov``; every id in
        ``[0, input_dim)`` is valid.
      output_dim: width of the returned embedding.
      num_buckets: the base ``m`` (DLRM's "collisions": the remainder table
        size).  Default ``ceil(input_dim ** (1 / num_partitions))``.  Must
        satisfy ``2 <= m < input_dim`` and ``m**num_partitions >= input_dim``.
      num_partitions: k, the number of tables (>= 2).  Default 2.
      operation: "mult" (default), "add" or "concat"; see ``qr.py`` for the
        table widths each implies.
      embeddings_initializer: None (default) for the variance-matched default
        described in the module docstring, or any Keras initializer.
      embeddings_regularizer: optional Keras regularizer, applied to every
        table.

    Input: integer ids of shape ``[batch]`` or ``[batch, 1]``.
    Output: ``[batch, output_dim]`` in the layer's compute dtype.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        num_buckets: int | None = None,
        num_partitions: int = 2,
        operation: str = "mult",
        embeddings_initializer=None,
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.num_partitions = int(num_partitions)
        self.operation = operation
        if num_buckets is None:
            num_buckets = default_num_buckets(self.input_dim, self.num_partitions)
        self.num_buckets = int(num_buckets)
        self._shapes = qr_table_shapes(
            self.input_dim, self.output_dim, self.num_buckets, self.num_partitions, self.operation
        )
        self.embeddings_initializer = (
            None
            if embeddings_initializer is None
            else keras.initializers.get(embeddings_initializer)
        )
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

    def _default_limit(self) -> float:
        k = self.num_partitions
        if self.operation == "mult":
            variance = _PLAIN_UNIFORM_LIMIT**2 / 3.0
            return math.sqrt(3.0 * variance ** (1.0 / k))
        if self.operation == "add":
            return _PLAIN_UNIFORM_LIMIT / math.sqrt(k)
        return _PLAIN_UNIFORM_LIMIT

    def _initializer_for(self, index: int):
        if self.embeddings_initializer is not None:
            return per_table_initializer(self.embeddings_initializer, index)
        limit = self._default_limit()
        return keras.initializers.RandomUniform(-limit, limit)

    def build(self, input_shape=None):
        # Table shapes depend only on the constructor arguments, never on the
        # input shape, so the layer can also be built with no input.
        self._embedding_tables = [
            self.add_weight(
                name=name,
                shape=(rows, dim),
                initializer=self._initializer_for(j),
                regularizer=self.embeddings_regularizer,
            )
            for j, (name, rows, dim) in enumerate(self._shapes)
        ]
        self.built = True

    def call(self, inputs, training=None):
        ids = prepare_ids(inputs, self.input_dim)
        m = self.num_buckets
        factors = []
        rest = ids
        for j, table in enumerate(self._embedding_tables):
            if j < self.num_partitions - 1:
                digit = ops.mod(rest, m)
                rest = ops.floor_divide(rest, m)
            else:
                # m**k >= input_dim bounds the top digit below m already.
                digit = rest
            factors.append(row_sparse.lookup(table, digit, training))
        if self.operation == "mult":
            return functools.reduce(ops.multiply, factors)
        if self.operation == "add":
            return functools.reduce(ops.add, factors)
        return ops.concatenate(factors, axis=-1)

    def compute_output_shape(self, input_shape):
        return ids_output_shape(input_shape, self.output_dim)

    def tables(self) -> list[dict[str, Any]]:
        """Tables for the memory report: ``[{"name", "rows", "dim"}, ...]``."""
        return [{"name": name, "rows": rows, "dim": dim} for name, rows, dim in self._shapes]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                # The resolved base, so a reload keeps the layout even if the
                # default formula changes.
                "num_buckets": self.num_buckets,
                "num_partitions": self.num_partitions,
                "operation": self.operation,
                "embeddings_initializer": (
                    None
                    if self.embeddings_initializer is None
                    else keras.initializers.serialize(self.embeddings_initializer)
                ),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialized(config, "embeddings_initializer", "embeddings_regularizer"))
