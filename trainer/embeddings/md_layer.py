"""The mixed-dimension layer (blocks, dims and projections: ``md.py``)."""

from collections.abc import Sequence
from typing import Any

import keras

# tf.dynamic_partition / tf.dynamic_stitch have no keras.ops equivalent; they
# let each id be embedded once, by its own block only.
import tensorflow as tf
from keras import ops

from trainer import row_sparse
from trainer.embeddings.ids import deserialized
from trainer.embeddings.ids import ids_output_shape
from trainer.embeddings.ids import per_table_initializer
from trainer.embeddings.ids import prepare_ids
from trainer.embeddings.md import check_offsets
from trainer.embeddings.md import check_projection
from trainer.embeddings.qr_layer import QREmbedding

_TAIL_QR_RESERVED = ("input_dim", "output_dim")


@keras.saving.register_keras_serializable(package="memrec")
class MDEmbedding(keras.layers.Layer):
    """Mixed-dimension embedding over contiguous, frequency-sorted id blocks.

    Args:
      block_offsets: ``[0, b_1, ..., input_dim]``, strictly increasing; block
        i holds ids ``[block_offsets[i], block_offsets[i+1])``.
      block_dims: width ``d_i`` of each block's table, ``1 <= d_i <=
        output_dim``.
      output_dim: width of the returned embedding.
      projection: how blocks narrower than ``output_dim`` reach it:
        "learned" (a bias-free ``d_i x output_dim`` weight) or "nested" (zero
        padding; no weight).  See ``md.py``.
      tail_qr: optional dict of ``QREmbedding`` kwargs (e.g.
        ``{"num_buckets": 32, "operation": "mult"}``; not input_dim or
        output_dim).  When set, the last block is a QREmbedding of
        ``block size`` ids and width ``d_last`` instead of a plain table: MD
        for the head, QR for the long tail.  It inherits
        ``embeddings_regularizer`` unless the dict sets its own, and keeps
        QREmbedding's own default initializer.
      embeddings_initializer: initializer of the block tables; default
        "uniform" (keras.layers.Embedding's default).
      embeddings_regularizer: optional regularizer for the block tables.
      projection_initializer: initializer of learned projections; default
        "glorot_uniform".

    Input: integer ids of shape ``[batch]`` or ``[batch, 1]``.
    Output: ``[batch, output_dim]``.

    Each id is embedded once, by its own block: the batch is partitioned by
    block, gathered (and projected) per block, and stitched back in order.
    """

    def __init__(
        self,
        block_offsets: Sequence[int],
        block_dims: Sequence[int],
        output_dim: int,
        projection: str = "learned",
        tail_qr: dict[str, Any] | None = None,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        projection_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.projection = check_projection(projection)
        block_offsets = [int(o) for o in block_offsets]
        self.block_offsets = check_offsets(block_offsets, block_offsets[-1] if block_offsets else 0)
        self.input_dim = self.block_offsets[-1]
        self.block_dims = [int(d) for d in block_dims]
        if len(self.block_dims) != len(self.block_offsets) - 1:
            raise ValueError(
                f"{len(self.block_offsets) - 1} blocks need as many dims, got "
                f"block_dims={self.block_dims}"
            )
        for d in self.block_dims:
            if not 1 <= d <= self.output_dim:
                raise ValueError(
                    f"block dims must be in [1, output_dim={self.output_dim}], "
                    f"got {self.block_dims}"
                )
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.projection_initializer = keras.initializers.get(projection_initializer)
        self.tail_qr = None if tail_qr is None else dict(tail_qr)
        self._tail = None
        if self.tail_qr is not None:
            for key in _TAIL_QR_RESERVED:
                if key in self.tail_qr:
                    raise ValueError(f"tail_qr must not set {key!r}: it comes from the last block")
            qr_kwargs = dict(self.tail_qr)
            if embeddings_regularizer is not None:
                qr_kwargs.setdefault("embeddings_regularizer", embeddings_regularizer)
            self._tail = QREmbedding(
                input_dim=self.block_offsets[-1] - self.block_offsets[-2],
                output_dim=self.block_dims[-1],
                name="tail_qr",
                **qr_kwargs,
            )

    @property
    def num_blocks(self) -> int:
        return len(self.block_dims)

    def _block_rows(self, i: int) -> int:
        return self.block_offsets[i + 1] - self.block_offsets[i]

    def _has_projection(self, i: int) -> bool:
        return self.projection == "learned" and self.block_dims[i] < self.output_dim

    def _has_table(self, i: int) -> bool:
        return not (self._tail is not None and i == self.num_blocks - 1)

    def build(self, input_shape=None):
        # Shapes depend only on the constructor arguments.
        self._block_tables = []
        self._projections = []
        for i, d in enumerate(self.block_dims):
            table = None
            if self._has_table(i):
                table = self.add_weight(
                    name=f"block_{i}_embeddings",
                    shape=(self._block_rows(i), d),
                    initializer=per_table_initializer(self.embeddings_initializer, i),
                    regularizer=self.embeddings_regularizer,
                )
            projection = None
            if self._has_projection(i):
                projection = self.add_weight(
                    name=f"block_{i}_projection",
                    shape=(d, self.output_dim),
                    initializer=per_table_initializer(self.projection_initializer, i),
                )
            self._block_tables.append(table)
            self._projections.append(projection)
        if self._tail is not None:
            self._tail.build()
        self.built = True

    def _embed_block(self, i: int, local_ids, training=None):
        if self._has_table(i):
            vectors = row_sparse.lookup(self._block_tables[i], local_ids, training)
        else:
            vectors = self._tail(local_ids, training=training)
        if self._projections[i] is not None:
            vectors = ops.matmul(vectors, self._projections[i])
        elif self.block_dims[i] < self.output_dim:
            vectors = ops.pad(vectors, [[0, 0], [0, self.output_dim - self.block_dims[i]]])
        return vectors

    def call(self, inputs, training=None):
        ids = prepare_ids(inputs, self.input_dim)
        if self.num_blocks == 1:
            return self._embed_block(0, ids, training)
        flat = ops.reshape(ids, (-1,))
        # Block index = number of interior offsets the id has reached.
        block = ops.zeros_like(flat, dtype="int32")
        for lo in self.block_offsets[1:-1]:
            block = block + ops.cast(ops.greater_equal(flat, lo), "int32")
        positions = ops.arange(ops.shape(flat)[0], dtype="int32")
        # tf.dynamic_partition / tf.dynamic_stitch: no keras.ops equivalent.
        id_parts = tf.dynamic_partition(flat, block, self.num_blocks)
        position_parts = tf.dynamic_partition(positions, block, self.num_blocks)
        vectors = [
            self._embed_block(i, id_parts[i] - self.block_offsets[i], training)
            for i in range(self.num_blocks)
        ]
        stitched = tf.dynamic_stitch(position_parts, vectors)
        return ops.reshape(stitched, tuple(ops.shape(ids)) + (self.output_dim,))

    def compute_output_shape(self, input_shape):
        return ids_output_shape(input_shape, self.output_dim)

    def tables(self) -> list[dict[str, Any]]:
        """Tables and projections: ``[{"name", "rows", "dim"}, ...]``."""
        out = []
        for i, d in enumerate(self.block_dims):
            if self._has_table(i):
                out.append({"name": f"block_{i}", "rows": self._block_rows(i), "dim": d})
            else:
                out.extend({**t, "name": f"block_{i}_qr_{t['name']}"} for t in self._tail.tables())
            if self._has_projection(i):
                out.append({"name": f"block_{i}_projection", "rows": d, "dim": self.output_dim})
        return out

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block_offsets": list(self.block_offsets),
                "block_dims": list(self.block_dims),
                "output_dim": self.output_dim,
                "projection": self.projection,
                "tail_qr": self.tail_qr,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
                "projection_initializer": keras.initializers.serialize(self.projection_initializer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(
            **deserialized(
                config, "embeddings_initializer", "projection_initializer", "embeddings_regularizer"
            )
        )
