"""Quotient-remainder (QR): the spec, its budget solver and the tables it sizes.

Shi et al., "Compositional Embeddings Using Complementary Partitions for
Memory-Efficient Recommendation Systems" (arXiv 1909.02107); the layer is
``qr_layer.QREmbedding``.

A plain table stores one row per id: ``input_dim * output_dim`` parameters.
QR writes each id in base ``m`` (``m = num_buckets``) and keeps one small table
per digit::

    k = 2:  id -> (id % m, id // m)            "remainder" and "quotient"
    k > 2:  id -> (d_0, d_1, ..., d_{k-1})     d_j = (id // m**j) % m

Table ``j`` has ``min(m, ceil(input_dim / m**j))`` rows, i.e. exactly as many
rows as digit ``j`` can take for ids below ``input_dim``.  For ``k = 2`` that
is ``m`` remainder rows and ``ceil(input_dim / m)`` quotient rows.  Because the
base-``m`` representation of an integer is unique and we require
``m**k >= input_dim``, every id in ``[0, input_dim)`` gets a distinct tuple of
rows, so no two ids share their whole embedding (they only share factors).
Memory is about ``k * input_dim**(1/k) * output_dim`` at the default ``m``.

The k looked-up vectors are combined by ``operation``:

* ``"mult"`` (default): element-wise product; every table is ``output_dim``
  wide.
* ``"add"``: element-wise sum; every table is ``output_dim`` wide.
* ``"concat"``: tables split ``output_dim`` as evenly as possible -- each gets
  ``output_dim // k`` columns and the first ``output_dim % k`` tables get one
  more -- so the concatenation is exactly ``output_dim`` wide.  This is the
  cheapest option (about ``1/k`` of the parameters of "mult").
"""

import dataclasses
import math
from typing import ClassVar

from trainer.embeddings.full import PlainTable
from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import SpecVocabularyError
from trainer.embeddings.spec import Table
from trainer.embeddings.spec import Vocabulary
from trainer.embeddings.spec import rows_text

OPERATIONS = ("mult", "add", "concat")

# A plain table's parameters wobble by a few rows around the budget as m
# crosses it (ceil rounding of the quotient rows); so many m either side of
# the binary search's crossing are compared exactly.
_SEARCH_WINDOW = 8


def integer_root_ceil(n: int, k: int) -> int:
    """Smallest integer ``m >= 1`` with ``m**k >= n``, exact for large n."""
    if n <= 1:
        return 1
    m = max(1, math.ceil(n ** (1.0 / k)))
    # The float root can be off by one for large n; fix it with exact ints.
    while m**k < n:
        m += 1
    while m > 1 and (m - 1) ** k >= n:
        m -= 1
    return m


def default_num_buckets(input_dim: int, num_partitions: int = 2) -> int:
    """Default base ``m = ceil(input_dim ** (1 / num_partitions))``, >= 2.

    This is the smallest base whose k digits still cover every id, which
    minimises ``sum_j rows_j`` (and so the parameter count).
    """
    return max(2, integer_root_ceil(int(input_dim), int(num_partitions)))


def qr_table_shapes(
    input_dim: int,
    output_dim: int,
    num_buckets: int | None = None,
    num_partitions: int = 2,
    operation: str = "mult",
) -> list[tuple[str, int, int]]:
    """(name, rows, dim) of each QR table, validating every argument.

    Raises:
      ValueError: on an unknown operation, ``num_partitions < 2``,
        ``num_buckets < 2``, ``num_buckets >= input_dim`` (QR would be larger
        than the plain table), ``num_buckets**num_partitions < input_dim``
        (ids would collide), or a "concat" ``output_dim`` narrower than
        ``num_partitions``.
    """
    n, d, k = int(input_dim), int(output_dim), int(num_partitions)
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    if k < 2:
        raise ValueError(f"num_partitions must be >= 2, got {num_partitions}")
    if d < 1:
        raise ValueError(f"output_dim must be >= 1, got {output_dim}")
    m = default_num_buckets(n, k) if num_buckets is None else int(num_buckets)
    if m < 2:
        raise ValueError(f"num_buckets must be >= 2, got {m}")
    if m >= n:
        raise ValueError(
            f"num_buckets={m} must be < input_dim={n}: a QR embedding with "
            "that many buckets is no smaller than a plain table (use a plain "
            "embedding, e.g. via the spec's 'threshold')."
        )
    if m**k < n:
        raise ValueError(
            f"num_buckets={m} with num_partitions={k} gives only {m}**{k}="
            f"{m**k} distinct tuples, fewer than input_dim={n}, so ids "
            f"would collide; use num_buckets >= {integer_root_ceil(n, k)}."
        )
    if operation == "concat" and d < k:
        raise ValueError(
            f"operation='concat' needs output_dim >= num_partitions "
            f"(got {d} < {k}): every table needs at least one column."
        )
    names = ["remainder", "quotient"] if k == 2 else [f"digit_{j}" for j in range(k)]
    shapes = []
    for j in range(k):
        rows = min(m, -(-n // m**j))  # -(-a // b) is ceil(a / b) in ints.
        dim = d // k + (1 if j < d % k else 0) if operation == "concat" else d
        shapes.append((names[j], rows, dim))
    return shapes


@dataclasses.dataclass(frozen=True)
class QRTable(Table):
    """A resolved QR table: the base ``num_buckets`` is always a number."""

    input_dim: int
    output_dim: int
    num_buckets: int
    num_partitions: int = 2
    operation: str = "mult"

    def shapes(self) -> list[tuple[str, int, int]]:
        return qr_table_shapes(
            self.input_dim, self.output_dim, self.num_buckets, self.num_partitions, self.operation
        )

    @property
    def params(self) -> int:
        """``sum_j rows_j * dim_j`` over the QR tables."""
        return sum(rows * dim for _, rows, dim in self.shapes())

    def layer(self, name, initializer=None, regularizer=None):
        from trainer.embeddings.qr_layer import QREmbedding

        return QREmbedding(
            self.input_dim,
            self.output_dim,
            num_buckets=self.num_buckets,
            num_partitions=self.num_partitions,
            operation=self.operation,
            embeddings_initializer=initializer,
            embeddings_regularizer=regularizer,
            name=name,
        )


def buckets_for_compression(
    input_dim: int,
    output_dim: int,
    compression: float,
    num_partitions: int = 2,
    operation: str = "mult",
) -> int:
    """The base m with the most parameters that still meets ``compression``.

    A budget is a ceiling: the chosen m has ``qr_params <= input_dim *
    output_dim / compression``, so a QR table never exceeds the memory it
    was given (the nearest ratio could overshoot by a few rows).  For k = 2
    and "mult"/"add" the parameters are ``d * (m + ceil(n / m))``, so solving
    ``m + n / m = n / c`` gives::

        m = (n / c + sqrt((n / c) ** 2 - 4 * n)) / 2

    (the root with ``m >= sqrt(n)``; "concat" halves the widths, so use
    ``2 * n / c`` for ``n / c``).  Parameters grow (almost) monotonically with
    m above ``ceil(n ** (1/k))``, so a binary search finds the crossing for
    any k and a window around it is compared exactly.  A ratio no m reaches
    gets the smallest m (maximum compression).
    """
    n, d, k = int(input_dim), int(output_dim), int(num_partitions)
    if compression is None or not compression > 1:
        raise ValueError(f"compression must be > 1, got {compression}")
    lo = default_num_buckets(n, k)
    hi = n - 1
    if lo > hi:
        raise ValueError(f"input_dim={n} is too small for a QR embedding")

    def params(m):
        return QRTable(n, d, m, k, operation).params

    budget = n * d / float(compression)
    a, b = lo, hi
    while a < b:  # smallest m with params(m) > budget
        mid = (a + b) // 2
        if params(mid) > budget:
            b = mid
        else:
            a = mid + 1
    window = range(max(lo, a - _SEARCH_WINDOW), min(hi, a + _SEARCH_WINDOW) + 1)
    fitting = [m for m in window if params(m) <= budget]
    if not fitting:
        return lo
    return max(fitting, key=lambda m: (params(m), -m))


@dataclasses.dataclass
class QRSpec(Spec):
    """``{"type": "qr", ...}``: quotient-remainder tables (module docstring).

    An MD spec's ``tail_qr`` takes the same keys but ``threshold``.

    Keys:
      num_buckets (int >= 2 | None, default None): the base m, i.e. the
        remainder table size (DLRM's "collisions"). None picks
        ``ceil(input_dim ** (1 / num_partitions))`` unless ``compression`` is
        set. The vocabulary must allow ``m ** num_partitions >= input_dim``;
        ``m >= input_dim`` gives a plain table (see below).
      compression (number > 1 | None, default None): instead of num_buckets,
        the smallest ratio ``input_dim * output_dim / qr_params`` to accept;
        the m with the most parameters that meets it is used
        (``buckets_for_compression``).
      num_partitions (int >= 2, default 2): k, the number of complementary
        partitions and tables.
      operation ("mult" | "add" | "concat", default "mult"): how the k
        vectors combine; "concat" splits output_dim across the tables.
      threshold (int >= 0, default 0): vocabularies with ``input_dim <=
        threshold`` get a plain table instead (DLRM's qr_threshold):
        compressing tiny tables saves nothing.

    A table with no more rows than buckets (so no smaller than a plain one)
    becomes a plain table, with a note; an explicit num_buckets too small to
    tell the rows apart raises ``SpecVocabularyError``.
    """

    type: ClassVar[str] = "qr"
    layer_module: ClassVar[str] = "trainer.embeddings.qr_layer"

    num_buckets: int | None = None
    compression: float | None = None
    num_partitions: int = 2
    operation: str = "mult"
    threshold: int = 0

    def validate(self, output_dim: int | None = None) -> None:
        self.check_int("num_buckets", 2)
        self.check_number("compression", 1)
        self.check_exclusive("num_buckets", "compression")
        self.check_int("num_partitions", 2)
        self.check_choice("operation", OPERATIONS)
        self.check_int("threshold", 0)
        k = self.num_partitions
        if self.operation == "concat" and output_dim is not None and output_dim < k:
            raise SpecError(
                f'operation "concat" gives each of the num_partitions={k} tables a share of '
                f"the width, but the width is {output_dim}"
            )

    def misfit(self, rows: int, vocab_size: int | None = None) -> str | None:
        """Why ``rows`` are too few for this QR table (a plain table is then
        the most a table of that size can be), or None.

        Raises:
          SpecVocabularyError: an explicit ``num_buckets`` too small to give
            each of the rows its own tuple of QR rows (ids would collide).
        """
        k = int(self.num_partitions)
        m = default_num_buckets(rows, k) if self.num_buckets is None else int(self.num_buckets)
        if m >= rows:
            asked = "" if self.num_buckets is None else f"num_buckets={m}: "
            return (
                f"{asked}{rows_text(rows, vocab_size)} are too few for QR, whose {m} buckets "
                "must be fewer than the rows (else it is no smaller than a plain table)"
            )
        if m**k < rows:
            raise SpecVocabularyError(
                f"num_buckets={m} with num_partitions={k} gives {m**k} distinct QR rows, fewer "
                f"than the table's {rows_text(rows, vocab_size)}, so ids would collide: use "
                f"num_buckets >= {integer_root_ceil(rows, k)} or leave it unset"
            )
        return None

    def table(self, rows: int, dim: int) -> QRTable:
        """The QR table of ``rows`` ids and width ``dim`` (rows must fit: ``misfit``)."""
        k = int(self.num_partitions)
        if self.compression is not None:
            m = buckets_for_compression(rows, dim, self.compression, k, self.operation)
        elif self.num_buckets is not None:
            m = int(self.num_buckets)
        else:
            m = default_num_buckets(rows, k)
        table = QRTable(rows, dim, m, k, self.operation)
        table.shapes()  # raises on sizes the layer would refuse
        return table

    def resolve(self, vocab: Vocabulary, output_dim: int, notes: list[str]) -> Table:
        if vocab.input_dim <= self.threshold:
            return PlainTable(vocab.input_dim, output_dim)
        misfit = self.misfit(vocab.input_dim, vocab.size)
        if misfit:
            notes.append(f"{misfit}: a plain table is used")
            return PlainTable(vocab.input_dim, output_dim)
        return self.table(vocab.input_dim, output_dim)
