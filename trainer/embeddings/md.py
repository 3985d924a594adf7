"""Mixed-dimension (MD) embedding.

Ginart et al., "Mixed Dimension Embeddings with Application to
Memory-Efficient Recommendation Systems" (arXiv 1909.11810).

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

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import keras
from keras import ops
import numpy as np

# tf.dynamic_partition / tf.dynamic_stitch have no keras.ops equivalent; they
# let each id be embedded once, by its own block only.
import tensorflow as tf

from trainer.qr_embedding import QREmbedding
from trainer.qr_embedding import ids_output_shape
from trainer.qr_embedding import per_table_initializer
from trainer.qr_embedding import prepare_ids


# ---------------------------------------------------------------------------
# Block boundaries.


def _check_offsets(offsets: Sequence[int], n: int) -> List[int]:
    offsets = [int(o) for o in offsets]
    if len(offsets) < 2:
        raise ValueError(f"need at least one block, got offsets {offsets}")
    if offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(f"block offsets must run from 0 to {n}, got {offsets}")
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        if hi <= lo:
            raise ValueError(
                f"block offsets must be strictly increasing (every block non-empty), got {offsets}"
            )
    return offsets


def _spread(cuts: Sequence[int], n: int) -> List[int]:
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
    return _check_offsets(offsets, n)


def block_boundaries_equal_mass(counts: Sequence[float], num_blocks: int) -> List[int]:
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


def block_boundaries_from_fractions(n: int, fractions: Sequence[float]) -> List[int]:
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


def block_boundaries_from_counts(n: int, sizes: Sequence[int]) -> List[int]:
    """Blocks with exactly ``sizes`` rows each (head first); sum must be n."""
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"block sizes must be >= 1, got {sizes}")
    if sum(sizes) != n:
        raise ValueError(f"block sizes sum to {sum(sizes)}, expected {n}")
    return _check_offsets(np.concatenate([[0], np.cumsum(sizes)]).tolist(), n)


def block_popularity(counts: Sequence[float], offsets: Sequence[int]) -> List[float]:
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
        for lo, hi in zip(offsets[:-1], offsets[1:])
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
) -> List[int]:
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


PROJECTIONS = ("learned", "nested")


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
        for r, d in zip(block_rows, block_dims)
    )


def largest_fitting_dims(
    dims_for_base: Callable[[int], List[int]],
    cost: Callable[[List[int]], int],
    max_dim: int,
    param_budget: int,
    min_dim: int = 1,
) -> List[int]:
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
    dims: Sequence[int], cost: Callable[[List[int]], int], max_dim: int, param_budget: int
) -> List[int]:
    """``dims`` with the budget that integer rounding left over spent.

    The alpha rule scales one head dim, so the widest fitting head can leave
    a fifth of the budget unused (8 blocks at 16x on ML-100K: 8,440 of
    10,416).  Passes over the blocks, head first, add one dim to each block
    that still fits, keeping dims non-increasing from head to tail and at
    most ``max_dim``, until no block can grow.
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


def alpha_power_dims_for_budget(
    block_rows: Sequence[int],
    block_popularity: Sequence[float],
    alpha: float,
    output_dim: int,
    param_budget: int,
    round_to_power_of_two: bool = False,
    min_dim: int = 1,
    projection: str = "learned",
) -> List[int]:
    """Alpha-rule dims with the widest head that fits ``param_budget``.

    Finds the largest head dim ``base_dim <= output_dim`` such that
    ``md_param_count(block_rows, dims, output_dim, projection) <=
    param_budget`` where
    ``dims = alpha_power_dims(block_popularity, alpha, base_dim, ...)``.

    Raises:
      ValueError: if even ``base_dim = min_dim`` exceeds the budget.
    """
    return largest_fitting_dims(
        lambda base: alpha_power_dims(
            block_popularity, alpha, base, round_to_power_of_two, min_dim
        ),
        lambda dims: md_param_count(block_rows, dims, output_dim, projection),
        output_dim,
        param_budget,
        min_dim,
    )


# ---------------------------------------------------------------------------
# The layer.


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
        padding; no weight).  See the module docstring.
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
        tail_qr: Optional[Dict[str, Any]] = None,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        projection_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.projection = check_projection(projection)
        block_offsets = [int(o) for o in block_offsets]
        self.block_offsets = _check_offsets(
            block_offsets, block_offsets[-1] if block_offsets else 0
        )
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

    def _embed_block(self, i: int, local_ids):
        if self._has_table(i):
            vectors = ops.take(self._block_tables[i], local_ids, axis=0)
        else:
            vectors = self._tail(local_ids)
        if self._projections[i] is not None:
            vectors = ops.matmul(vectors, self._projections[i])
        elif self.block_dims[i] < self.output_dim:
            vectors = ops.pad(vectors, [[0, 0], [0, self.output_dim - self.block_dims[i]]])
        return vectors

    def call(self, inputs):
        ids = prepare_ids(inputs, self.input_dim)
        if self.num_blocks == 1:
            return self._embed_block(0, ids)
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
            self._embed_block(i, id_parts[i] - self.block_offsets[i])
            for i in range(self.num_blocks)
        ]
        stitched = tf.dynamic_stitch(position_parts, vectors)
        return ops.reshape(stitched, tuple(ops.shape(ids)) + (self.output_dim,))

    def compute_output_shape(self, input_shape):
        return ids_output_shape(input_shape, self.output_dim)

    def tables(self) -> List[Dict[str, Any]]:
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
        config = dict(config)
        for key, module in (
            ("embeddings_initializer", keras.initializers),
            ("projection_initializer", keras.initializers),
            ("embeddings_regularizer", keras.regularizers),
        ):
            if config.get(key) is not None:
                config[key] = module.deserialize(config[key])
        return cls(**config)
