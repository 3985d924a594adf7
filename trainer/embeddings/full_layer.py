"""The plain table's layer: ``keras.layers.Embedding`` read row-sparsely."""

import keras
from keras import ops

from trainer import row_sparse


@keras.saving.register_keras_serializable(package="memrec")
class RowEmbedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` whose lookup reads only the rows asked for.

    Keras' own reads the whole table densely first (``ops.take``), so its
    gradient and any optimizer step cost the vocabulary; see
    ``trainer/row_sparse.py``. Same arguments, weights and output shape.
    """

    def call(self, inputs, training=None):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return row_sparse.lookup(self.embeddings, inputs, training)
