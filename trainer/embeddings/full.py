"""Full: a plain table, one ``output_dim`` row per id."""

import dataclasses
from typing import ClassVar

from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import Table
from trainer.embeddings.spec import Vocabulary


@dataclasses.dataclass(frozen=True)
class PlainTable(Table):
    """``input_dim x output_dim``: a ``keras.layers.Embedding`` read row-sparsely."""

    input_dim: int
    output_dim: int

    @property
    def rows(self) -> int:
        """Rows stored: one per id here; fewer where ids share rows."""
        return self.input_dim

    @property
    def params(self) -> int:
        return self.rows * self.output_dim

    def layer(self, name, initializer=None, regularizer=None):
        from trainer.embeddings.full_layer import RowEmbedding

        return RowEmbedding(
            self.input_dim,
            self.output_dim,
            embeddings_initializer="uniform" if initializer is None else initializer,
            embeddings_regularizer=regularizer,
            name=name,
        )


@dataclasses.dataclass
class FullSpec(Spec):
    """``{"type": "full"}``: a plain ``input_dim x output_dim`` table. No other keys.

    The layer keeps the ids' rank (``[batch, 1]`` ids give ``[batch, 1,
    output_dim]``), unlike the QR and MD layers, which drop a unit axis.
    """

    type: ClassVar[str] = "full"
    layer_module: ClassVar[str | None] = "trainer.embeddings.full_layer"

    def resolve(self, vocab: Vocabulary, output_dim: int, notes: list[str]) -> PlainTable:
        return PlainTable(vocab.input_dim, output_dim)
