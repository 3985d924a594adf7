"""Mixed-dimension (MD): the spec, its block and dim solvers, the tables it sizes.

Ginart et al., "Mixed Dimension Embeddings with Application to
Memory-Efficient Recommendation Systems" (arXiv 1909.11810); the layer is
``md_layer.MDEmbedding``.

The vocabulary is sorted by frequency (id 0 = most popular), so it can be cut
into contiguous blocks ``[offsets[i], offsets[i+1])`` from head to tail.  Block
``i`` gets its own table of width ``d_i``; popular blocks get wide rows, rare
blocks narrow ones.  Narrow rows are lifted to the common width, so every id
still yields an ``output_dim`` vector, in one of two ways (``projection``):

``"learned"`` (the paper's)
    A bias-free projection ``P_i`` (``d_i x output_dim``) per narrow block,
    trained with the rows and counted as parameters::

        e(id) = T_i[id - offsets[i]] @ P_i   (P_i omitted when d_i == output_dim)

``"nested"``
    The row fills the first ``d_i`` coordinates, zeros after -- the fixed
    projection ``[I, 0]``, which costs nothing to store.  Every block shares
    the leading coordinates, so a rare id's short vector is the truncation of
    the space a popular id's long one spans, and a dot product between two
    nested ids runs over ``min(d_user, d_movie)`` coordinates.

Choosing the dimensions -- the alpha power rule
-----------------------------------------------
With ``p_i`` the popularity of block i, measured as lookups per row
(``block frequency / block rows``), the paper sets::

    d_i = base_dim * (p_i / max_j p_j) ** alpha

``alpha = 0`` gives every block ``base_dim`` (a plain table plus
projections); larger alpha shrinks rare blocks faster.  Dims are rounded to the
nearest integer (or power of two), floored at ``min_dim`` and capped at
``base_dim``.

DLRM's md_solver writes the rule in terms of block sizes instead::

    d_i = d_0 * (n_min / n_i) ** alpha

where ``n_i`` is the number of rows in block i and ``d_0`` the dim of the
smallest block.  When every block holds the same frequency mass F (the
"equal-mass" blocking below), ``p_i = F / n_i``, so
``p_i / max p = n_min / n_i`` and both forms give the same dims.

Blocking helpers return offsets ``[0, b_1, ..., n]``: strictly increasing with
every block non-empty.
"""

import dataclasses
import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import Optional

import numpy as np

from trainer.embeddings.qr import QRSpec
from trainer.embeddings.qr import QRTable
from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import SpecVocabularyError
from trainer.embeddings.spec import Table
from trainer.embeddings.spec import Vocabulary
from trainer.embeddings.spec import is_int
from trainer.embeddings.spec import is_number
from trainer.embeddings.spec import plural
from trainer.embeddings.spec import rows_text
from trainer.embeddings.spec import shown

PROJECTIONS = ("learned", "nested")
DEFAULT_BLOCKS = 4
DEFAULT_ALPHA = 0.3


# ---------------------------------------------------------------------------
# Block boundaries.


def check_offsets(offsets: Sequence[int], n: int) -> list[int]:
    offsets = [int(o) for o in offsets]
    if len(offsets) < 2:
        raise ValueError(f"need at least one block, got offsets {offsets}")
    if offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(f"block offsets must run from 0 to {n}, got {offsets}")
    for lo, hi in zip(offsets[:-1], offsets[1:], strict=False):
        if hi <= lo:
            raise ValueError(
                f"block offsets must be strictly increasing (every block non-empty), got {offsets}"
            )
    return offsets


def _spread(cuts: Sequence[int], n: int) -> list[int]:
    """Offsets from interior cut points, nudged so no block is empty."""
    num_blocks = len(cuts) + 1
    if n < num_blocks:
        raise ValueError(f"cannot cut {n} rows into {num_blocks} non-empty blocks")
    offsets = [0] + [int(c) for c in cuts] + [n]
    # Forward pass keeps each block >= 1 row from the head, backward pass
    # keeps room for the remaining blocks at the tail.
    for i in range(1, num_blocks):
        offsets[i] = max(offsets[i], offsets[i - 1] + 1)
    for i in range(num_blocks - 1, 0, -1):
        offsets[i] = min(offsets[i], offsets[i + 1] - 1)
    return check_offsets(offsets, n)


def block_boundaries_equal_mass(counts: Sequence[float], num_blocks: int) -> list[int]:
    """Cut frequency-sorted ``counts`` into blocks of ~equal frequency mass.

    Cut ``j`` goes where the running total is closest to ``j / num_blocks`` of
    the total mass.  When a single id holds more than a block's share, cuts
    would coincide; they are then pushed apart so every block has a row.

    Args:
      counts: frequency of each id, sorted descending; len = number of rows.
      num_blocks: number of blocks (>= 1).

    Returns:
      Offsets ``[0, b_1, ..., len(counts)]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    num_blocks = int(num_blocks)
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    if counts.ndim != 1 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be a 1-D sequence of finite values >= 0")
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts sum to 0: equal-mass blocks are undefined")
    prefix = np.concatenate([[0.0], np.cumsum(counts)])  # mass of ids < i
    cuts = []
    for j in range(1, num_blocks):
        target = total * j / num_blocks
        i = int(np.searchsorted(prefix, target, side="left"))
        # prefix[i - 1] < target <= prefix[i] (i >= 1 as target > 0); cut at
        # whichever neighbour is closer, the smaller head on a tie.
        if target - prefix[i - 1] <= prefix[i] - target:
            i -= 1
        cuts.append(i)
    return _spread(cuts, len(counts))


def block_boundaries_from_fractions(n: int, fractions: Sequence[float]) -> list[int]:
    """Blocks holding the given fractions of the ``n`` rows (head first).

    ``fractions`` must be positive and sum to 1; cut points are rounded to
    the nearest row and pushed apart so every block keeps a row.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(f <= 0 for f in fractions):
        raise ValueError(f"block fractions must be positive, got {fractions}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"block fractions must sum to 1, got {sum(fractions)}")
    cuts = np.rint(np.cumsum(fractions)[:-1] * n).astype(int).tolist()
    return _spread(cuts, int(n))


def block_boundaries_from_counts(n: int, sizes: Sequence[int]) -> list[int]:
    """Blocks with exactly ``sizes`` rows each (head first); sum must be n."""
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"block sizes must be >= 1, got {sizes}")
    if sum(sizes) != n:
        raise ValueError(f"block sizes sum to {sum(sizes)}, expected {n}")
    return check_offsets(np.concatenate([[0], np.cumsum(sizes)]).tolist(), n)


def block_popularity(counts: Sequence[float], offsets: Sequence[int]) -> list[float]:
    """Lookups per row of each block: block frequency / block rows.

    ``counts`` may be shorter than ``offsets[-1]``; the missing rows (e.g.
    OOV buckets) count as frequency 0.
    """
    counts = np.asarray(counts, dtype=np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(counts)])

    def mass_below(i):
        return prefix[min(i, len(counts))]

    return [
        float((mass_below(hi) - mass_below(lo)) / (hi - lo))
        for lo, hi in zip(offsets[:-1], offsets[1:], strict=False)
    ]


# ---------------------------------------------------------------------------
# Block dimensions.


def _nearest_power_of_two(x: float) -> int:
    if x <= 1:
        return 1
    lo = 2 ** int(math.floor(math.log2(x)))
    hi = 2 * lo
    # Ties go up: the larger block loses less.
    return hi if hi - x <= x - lo else lo


def alpha_power_dims(
    block_popularity: Sequence[float],
    alpha: float,
    base_dim: int,
    round_to_power_of_two: bool = False,
    min_dim: int = 1,
) -> list[int]:
    """Ginart et al.'s power rule ``d_i = base_dim * (p_i / max p) ** alpha``.

    Args:
      block_popularity: lookups per row of each block (``block_popularity``).
      alpha: temperature >= 0; 0 makes every block ``base_dim`` wide.
      base_dim: dim of the most popular block.
      round_to_power_of_two: round to the nearest power of two (ties up)
        instead of the nearest integer.
      min_dim: floor applied after rounding.

    Returns:
      One int per block, within ``[min_dim, base_dim]``.  A rounded value above
      ``base_dim`` is capped at ``base_dim`` even if that is not a power of
      two.
    """
    p = np.asarray(block_popularity, dtype=np.float64)
    base_dim, min_dim, alpha = int(base_dim), int(min_dim), float(alpha)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError(
            "block_popularity must be a non-empty 1-D sequence of finite "
            f"values >= 0, got {list(block_popularity)}"
        )
    if p.max() <= 0:
        raise ValueError("all block popularities are 0: no block to anchor on")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if min_dim < 1 or base_dim < min_dim:
        raise ValueError(
            f"need 1 <= min_dim <= base_dim, got min_dim={min_dim}, base_dim={base_dim}"
        )
    dims = []
    for raw in base_dim * (p / p.max()) ** alpha:
        if round_to_power_of_two:
            d = _nearest_power_of_two(raw)
        else:
            d = int(math.floor(raw + 0.5))  # half up, not banker's rounding
        dims.append(min(max(d, min_dim), base_dim))
    return dims


def check_projection(projection: str) -> str:
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    return projection


def md_param_count(
    block_rows: Sequence[int],
    block_dims: Sequence[int],
    output_dim: int,
    projection: str = "learned",
) -> int:
    """Tables ``rows_i * d_i``, plus ``d_i * output_dim`` per narrower block
    when its projection is learned (a nested one is a zero pad, not a weight)."""
    learned = check_projection(projection) == "learned"
    return sum(
        int(r) * int(d) + (int(d) * output_dim if learned and d < output_dim else 0)
        for r, d in zip(block_rows, block_dims, strict=False)
    )


def largest_fitting_dims(
    dims_for_base: Callable[[int], list[int]],
    cost: Callable[[list[int]], int],
    max_dim: int,
    param_budget: int,
    min_dim: int = 1,
) -> list[int]:
    """Dims for the largest ``base_dim <= max_dim`` with cost <= budget.

    Every base is tried from ``max_dim`` down, because cost is not monotone
    in the base: a block that reaches ``output_dim`` drops its learned
    projection.
    """
    for base in range(int(max_dim), max(int(min_dim), 1) - 1, -1):
        dims = dims_for_base(base)
        if cost(dims) <= param_budget:
            return dims
    floor_dims = dims_for_base(max(int(min_dim), 1))
    raise ValueError(
        f"param_budget={param_budget} is too small: even dims {floor_dims} "
        f"need {cost(floor_dims)} parameters"
    )


def widen_to_budget(
    dims: Sequence[int], cost: Callable[[list[int]], int], max_dim: int, param_budget: int
) -> list[int]:
    """``dims`` with the budget that integer rounding left over spent.

    The alpha rule scales one head dim, so the widest head that fits can leave
    much of the budget unused.  Passes over the blocks, head first, add one
    dim to each block that still fits, keeping dims non-increasing from head
    to tail and at most ``max_dim``, until no block can grow.
    """
    dims = [int(d) for d in dims]
    if cost(dims) > param_budget:
        raise ValueError(f"dims {dims} already exceed param_budget={param_budget}")
    grew = True
    while grew:
        grew = False
        for i in range(len(dims)):
            ceiling = int(max_dim) if i == 0 else dims[i - 1]
            if dims[i] >= ceiling:
                continue
            wider = dims[:i] + [dims[i] + 1] + dims[i + 1 :]
            if cost(wider) <= param_budget:
                dims, grew = wider, True
    return dims


# ---------------------------------------------------------------------------
# The spec and the table it resolves into.


@dataclasses.dataclass(frozen=True)
class MDTable(Table):
    """A resolved MD table: block offsets and dims, and the QR table of its
    last block when that is one."""

    offsets: tuple[int, ...]
    dims: tuple[int, ...]
    output_dim: int
    projection: str = "learned"
    tail: QRTable | None = None

    @property
    def rows(self) -> list[int]:
        return [hi - lo for lo, hi in zip(self.offsets[:-1], self.offsets[1:], strict=False)]

    @property
    def padded_width(self) -> int | None:
        return max(self.dims) if self.projection == "nested" else None

    @property
    def params(self) -> int:
        """Tables and learned projections, the tail's QR tables in place of its rows."""
        total = md_param_count(self.rows, self.dims, self.output_dim, self.projection)
        if self.tail is not None:
            total += self.tail.params - self.rows[-1] * self.dims[-1]
        return total

    def layer(self, name, initializer=None, regularizer=None):
        from trainer.embeddings.md_layer import MDEmbedding

        tail = self.tail
        return MDEmbedding(
            block_offsets=list(self.offsets),
            block_dims=list(self.dims),
            output_dim=self.output_dim,
            projection=self.projection,
            tail_qr=None
            if tail is None
            else dict(
                num_buckets=tail.num_buckets,
                num_partitions=tail.num_partitions,
                operation=tail.operation,
            ),
            embeddings_regularizer=regularizer,
            name=name,
            **({} if initializer is None else {"embeddings_initializer": initializer}),
        )


@dataclasses.dataclass
class MDSpec(Spec):
    """``{"type": "md", ...}``: mixed-dimension blocks (module docstring).

    Blocking, at most one of (OOV rows always join the last block):
      blocks (int >= 1 | None, default 4, or ``len(dims)`` with dims): that
        many blocks, cut to hold equal frequency mass.
      block_fractions (list of numbers > 0 | None): the fraction of the
        vocabulary's ids in each block, head first; sums to 1.
      block_sizes (list of ints >= 1 | None): rows per block, head first;
        sums to the vocabulary size (OOV rows then join the last block) or to
        ``input_dim``.

    Dimensions, an explicit list or the alpha power rule:
      dims (list of ints in [1, output_dim] | None): one dim per block, head
        first (e.g. [64, 32, 16]); excludes alpha, base_dim, param_budget,
        compression and max_dim.
      alpha (number >= 0 | None, default 0.3): the rule's temperature.
      base_dim (int >= 1 | None, default max_dim): the head block's dim.
      param_budget (int >= 1 | None): instead of base_dim, the largest head
        dim whose parameters (tables, learned projections, the tail's QR
        tables) fit this budget.
      compression (number > 1 | None): instead of base_dim or param_budget,
        ``param_budget = floor(input_dim * output_dim / compression)``, a
        budget that follows the vocabulary.
      fill_budget (bool, default false): with a budget, spend what integer
        rounding of the alpha rule left, widening blocks head first with
        dims kept non-increasing (``widen_to_budget``).
      max_dim (int in [1, output_dim] | None, default output_dim): cap on
        every alpha-rule dim.
      round_to_power_of_two (bool, default false), min_dim (int >= 1,
        default 1): rounding and floor of alpha-rule dims.

    projection ("learned" | "nested", default "learned"): how blocks narrower
    than output_dim reach it, a trained projection (counted in the budget) or
    zero padding (free).

    tail_qr (object | None): make the last (rarest) block a QR table, with
    ``QRSpec``'s keys but threshold, applied to that block's rows and dim.

    A vocabulary with fewer ids than blocks gets one block per id (explicit
    dims keep their head, fractions merge their tail); a tail too small for
    QR stays a plain block; each with a note. ``block_sizes`` that sum to
    neither the vocabulary nor the table, and a budget too small for the
    rows, raise ``SpecVocabularyError``.
    """

    type: ClassVar[str] = "md"
    layer_module: ClassVar[str] = "trainer.embeddings.md_layer"

    blocks: int | None = None
    block_fractions: list[float] | None = None
    block_sizes: list[int] | None = None
    alpha: float | None = None
    base_dim: int | None = None
    param_budget: int | None = None
    compression: float | None = None
    dims: list[int] | None = None
    round_to_power_of_two: bool = False
    min_dim: int = 1
    fill_budget: bool = False
    max_dim: int | None = None
    projection: str = "learned"
    tail_qr: Any | None = None  # a QRSpec once validated

    def validate(self, output_dim: int | None = None) -> None:
        """Checks every key; also turns a ``tail_qr`` object into its ``QRSpec``."""
        self.check_int("blocks", 1)
        self.check_list("block_fractions", lambda v: is_number(v) and v > 0, "numbers > 0")
        fractions = self.block_fractions
        if fractions is not None and abs(sum(fractions) - 1.0) > 1e-6:
            raise SpecError(
                f"block_fractions must sum to 1, got {shown(fractions)} (sum {sum(fractions):g})"
            )
        self.check_list("block_sizes", lambda v: is_int(v) and v >= 1, "integers >= 1")
        self.check_exclusive("blocks", "block_fractions", "block_sizes")
        self.check_number("alpha", 0, inclusive=True)
        self.check_int("base_dim", 1)
        self.check_int("param_budget", 1)
        self.check_number("compression", 1)
        self.check_exclusive("base_dim", "param_budget", "compression")
        self.check_list(
            "dims",
            lambda v: is_int(v) and 1 <= v <= (output_dim or v),
            "integers >= 1"
            if output_dim is None
            else f"integers in [1, {output_dim}] (the embedding width)",
        )
        self.check_bool("round_to_power_of_two")
        self.check_int("min_dim", 1)
        self.check_bool("fill_budget")
        self.check_int("max_dim", 1, output_dim)
        self.check_choice("projection", PROJECTIONS)
        if self.dims is not None:
            self._check_explicit_dims()
        widest = self.max_dim if self.max_dim is not None else output_dim
        limit = "max_dim" if self.max_dim is not None else "the embedding width"
        if widest is not None and self.base_dim is not None and self.base_dim > widest:
            raise SpecError(f"base_dim={self.base_dim} exceeds {limit} ({widest})")
        if self.dims is None and widest is not None and self.min_dim > widest:
            raise SpecError(f"min_dim={self.min_dim} exceeds {limit} ({widest})")
        if self.tail_qr is not None and not isinstance(self.tail_qr, QRSpec):
            self.tail_qr = self._tail_spec(self.tail_qr)

    def _check_explicit_dims(self) -> None:
        for key in ("alpha", "base_dim", "param_budget", "compression", "max_dim"):
            if getattr(self, key) is not None:
                raise SpecError(f"dims (explicit block widths) excludes {key}")
        for key in ("blocks", "block_fractions", "block_sizes"):
            value = getattr(self, key)
            count = value if key == "blocks" or value is None else len(value)
            if count is not None and count != len(self.dims):
                raise SpecError(
                    f"dims {shown(self.dims)} has {len(self.dims)} widths but {key} gives "
                    f"{count} blocks"
                )

    @staticmethod
    def _tail_spec(options: Any) -> QRSpec:
        if not isinstance(options, Mapping):
            raise SpecError(
                f"tail_qr must be a JSON object of QR keys (or null), got {shown(options)}"
            )
        try:
            return QRSpec.from_json(options, where="in tail_qr", exclude=("threshold",))
        except SpecError as error:
            raise SpecError(f"tail_qr: {error}") from None

    def capped(self, width: int) -> Optional["MDSpec"]:
        """No block wider than ``width``; explicit dims stay as they are."""
        if self.dims is not None:
            return None
        return dataclasses.replace(
            self,
            max_dim=width,
            base_dim=None if self.base_dim is None else min(self.base_dim, width),
            min_dim=min(self.min_dim, width),
        )

    def _blocking(self, vocab: Vocabulary, notes: list[str]) -> tuple[list[int], list[int] | None]:
        """Block offsets, and the explicit dims for those blocks (or None).

        Asked for more blocks than the vocabulary has ids, the table gets one
        block per id (``blocks`` and ``dims``: the first ones;
        ``block_fractions``: the last ones merged) and a note says so.
        """
        size, input_dim = vocab.size, vocab.input_dim
        dims = None if self.dims is None else [int(d) for d in self.dims]
        if self.block_sizes is not None:
            sizes = [int(s) for s in self.block_sizes]
            if sum(sizes) == size and input_dim > size:
                sizes[-1] += input_dim - size  # OOV rows join the tail
            elif sum(sizes) != input_dim:
                raise SpecVocabularyError(
                    f"block_sizes {shown(self.block_sizes)} sum to {sum(sizes)}, but the table "
                    f"has {rows_text(input_dim, size)}: they must sum to "
                    + (f"{size} or {input_dim}" if input_dim > size else str(input_dim))
                )
            return block_boundaries_from_counts(input_dim, sizes), dims
        fractions = self.block_fractions
        if fractions is not None:
            asked = len(fractions)
        elif self.blocks is not None:
            asked = int(self.blocks)
        else:
            asked = len(dims) if dims is not None else DEFAULT_BLOCKS
        blocks = min(asked, max(size, 1))
        if blocks < asked:
            notes.append(
                f"{plural(asked, 'MD block')} asked for, but the vocabulary has "
                f"{plural(size, 'id')}: {plural(blocks, 'block')}"
                + (f", dims {dims[:blocks]}" if dims is not None else "")
            )
            if dims is not None:
                dims = dims[:blocks]
            if fractions is not None:
                fractions = list(fractions[: blocks - 1]) + [sum(fractions[blocks - 1 :])]
        if blocks == 1:
            offsets = [0, input_dim]
        elif fractions is not None:
            offsets = block_boundaries_from_fractions(size, fractions)
        else:
            offsets = block_boundaries_equal_mass(vocab.counts, blocks)
        offsets[-1] = input_dim  # OOV rows join the tail
        return offsets, dims

    def _budget(self, input_dim: int, output_dim: int) -> int | None:
        if self.compression is not None:
            return int(input_dim * output_dim // self.compression)
        return None if self.param_budget is None else int(self.param_budget)

    def resolve(self, vocab: Vocabulary, output_dim: int, notes: list[str]) -> MDTable:
        offsets, dims = self._blocking(vocab, notes)
        rows = offsets[-1] - offsets[-2]
        tail = self.tail_qr
        if tail is not None:
            try:
                misfit = tail.misfit(rows)
            except SpecVocabularyError as error:
                raise SpecVocabularyError(f"tail_qr: {error}") from None
            if misfit:
                notes.append(f"tail_qr: {misfit}: the last MD block is a plain table")
                tail = None

        def table(dims: Sequence[int]) -> MDTable:
            return MDTable(
                tuple(offsets),
                tuple(int(d) for d in dims),
                output_dim,
                self.projection,
                None if tail is None else tail.table(rows, dims[-1]),
            )

        if dims is not None:
            return table(dims)
        max_dim = output_dim if self.max_dim is None else int(self.max_dim)
        alpha = DEFAULT_ALPHA if self.alpha is None else self.alpha
        popularity = block_popularity(vocab.counts, offsets)

        def dims_for_base(base: int) -> list[int]:
            return alpha_power_dims(
                popularity, alpha, base, bool(self.round_to_power_of_two), int(self.min_dim)
            )

        budget = self._budget(vocab.input_dim, output_dim)
        if budget is None:
            return table(dims_for_base(max_dim if self.base_dim is None else int(self.base_dim)))

        def cost(dims: list[int]) -> int:
            return table(dims).params

        dims = largest_fitting_dims(dims_for_base, cost, max_dim, budget, int(self.min_dim))
        if self.fill_budget:
            dims = widen_to_budget(dims, cost, max_dim, budget)
        return table(dims)
