"""The hashing trick: the spec and the table it sizes (the layer: ``hash_layer.py``).

The baseline Shi et al. (arXiv 1909.02107) compare quotient-remainder
embeddings with at equal memory: ``num_buckets`` rows, and id ``i`` reads row
``i mod num_buckets``, shared with every id congruent to it. It is QR's
remainder table without the quotient table that tells those ids apart. Ids
are frequency ranks (id 0 the most rated), so the ``num_buckets`` most
popular ids get rows of their own and the tail shares them: the strongest
fixed hash for a frequency-sorted vocabulary, which makes it the honest bar
for QR at any budget, including those past a one-dimensional plain table.
"""

import dataclasses
import math
from typing import ClassVar

from trainer.embeddings.full import PlainTable
from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import Vocabulary
from trainer.embeddings.spec import rows_text


@dataclasses.dataclass(frozen=True)
class HashedTable(PlainTable):
    """A plain table of ``num_buckets`` rows; id ``i`` reads row ``i mod num_buckets``."""

    num_buckets: int

    rows = property(lambda self: self.num_buckets)

    def layer(self, name, initializer=None, regularizer=None):
        from trainer.embeddings import hash_layer

        layer_args = (self.input_dim, self.output_dim, self.num_buckets, initializer, regularizer)
        return hash_layer.HashEmbedding(*layer_args, name=name)


@dataclasses.dataclass
class HashSpec(Spec):
    """``{"type": "hash", ...}``: the hashing trick, one of these two keys.

    num_buckets (int >= 1)
        Rows of the table.
    compression (float > 1)
        Instead: at least this ratio to a full table,
        ``num_buckets = floor(input_dim / compression)`` (at least one row).

    A bucket count no smaller than the table's ids gives a plain table.
    """

    type: ClassVar[str] = "hash"
    layer_module: ClassVar[str | None] = "trainer.embeddings.hash_layer"

    num_buckets: int | None = None
    compression: float | None = None

    def validate(self, output_dim: int | None = None) -> None:
        self.check_int("num_buckets", 1)
        self.check_number("compression", 1)
        if (self.num_buckets is None) == (self.compression is None):
            raise SpecError("set exactly one of num_buckets, compression")

    def resolve(self, vocab: Vocabulary, output_dim: int, notes: list[str]) -> PlainTable:
        n = vocab.input_dim
        buckets = self.num_buckets
        if buckets is None:
            buckets = max(1, math.floor(n / self.compression))
        if buckets >= n:
            notes.append(f"{buckets} hash buckets for {rows_text(n, vocab.size)}: a plain table")
            return PlainTable(n, output_dim)
        return HashedTable(input_dim=n, num_buckets=buckets, output_dim=output_dim)
