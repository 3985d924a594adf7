"""Quotient-remainder (QR) embedding, generalised to k complementary partitions.

Shi et al., "Compositional Embeddings Using Complementary Partitions for
Memory-Efficient Recommendation Systems" (arXiv 1909.02107).

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
table, see ``per_table_initializer``).
"""

import functools
import math
from typing import Any, Dict, List, Optional, Tuple

import keras
from keras import ops

OPERATIONS = ("mult", "add", "concat")

# keras.layers.Embedding's default initializer is uniform(-0.05, 0.05); the
# QR defaults are scaled so the combined vector matches its variance.
_PLAIN_UNIFORM_LIMIT = 0.05


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


def _table_names(num_partitions: int) -> List[str]:
    if num_partitions == 2:
        return ["remainder", "quotient"]
    return [f"digit_{j}" for j in range(num_partitions)]


def qr_table_shapes(
    input_dim: int,
    output_dim: int,
    num_buckets: Optional[int] = None,
    num_partitions: int = 2,
    operation: str = "mult",
) -> List[Tuple[str, int, int]]:
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
            "embedding, e.g. via the factory's 'threshold')."
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
    names = _table_names(k)
    shapes = []
    for j in range(k):
        rows = min(m, -(-n // m**j))  # -(-a // b) is ceil(a / b) in ints.
        if operation == "concat":
            dim = d // k + (1 if j < d % k else 0)
        else:
            dim = d
        shapes.append((names[j], rows, dim))
    return shapes


def qr_param_count(
    input_dim: int,
    output_dim: int,
    num_buckets: Optional[int] = None,
    num_partitions: int = 2,
    operation: str = "mult",
) -> int:
    """Total parameters: ``sum_j rows_j * dim_j`` over the QR tables."""
    return sum(
        rows * dim
        for _, rows, dim in qr_table_shapes(
            input_dim, output_dim, num_buckets, num_partitions, operation
        )
    )


def per_table_initializer(initializer, index: int):
    """A fresh copy of ``initializer`` for table number ``index``.

    Keras 3 random initializers draw the same values on every call of one
    instance, so reusing an instance would give same-shaped tables identical
    starting values (for "mult", a product of a table with itself). Copies of
    an unseeded initializer get fresh seeds; a seeded one is offset by
    ``index`` so runs stay reproducible but tables still differ.
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if isinstance(config.get("seed"), int):
        config = dict(config, seed=config["seed"] + index)
    return initializer.__class__.from_config(config)


def prepare_ids(inputs, input_dim: int):
    """Cast ids to an integer dtype and drop a trailing axis of size 1."""
    # int32 keeps the digit arithmetic on the fast path; only vocabularies
    # beyond 2**31 ids need int64.
    dtype = "int32" if input_dim < 2**31 else "int64"
    ids = ops.cast(inputs, dtype)
    if len(ids.shape) >= 2 and ids.shape[-1] == 1:
        ids = ops.squeeze(ids, axis=-1)
    return ids


def ids_output_shape(input_shape, output_dim: int) -> Tuple:
    shape = tuple(input_shape)
    if len(shape) >= 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape + (output_dim,)


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
      operation: "mult" (default), "add" or "concat"; see the module
        docstring for the table widths each implies.
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
        num_buckets: Optional[int] = None,
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

    def call(self, inputs):
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
            factors.append(ops.take(table, digit, axis=0))
        if self.operation == "mult":
            return functools.reduce(ops.multiply, factors)
        if self.operation == "add":
            return functools.reduce(ops.add, factors)
        return ops.concatenate(factors, axis=-1)

    def compute_output_shape(self, input_shape):
        return ids_output_shape(input_shape, self.output_dim)

    def tables(self) -> List[Dict[str, Any]]:
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
        config = dict(config)
        if config.get("embeddings_initializer") is not None:
            config["embeddings_initializer"] = keras.initializers.deserialize(
                config["embeddings_initializer"]
            )
        if config.get("embeddings_regularizer") is not None:
            config["embeddings_regularizer"] = keras.regularizers.deserialize(
                config["embeddings_regularizer"]
            )
        return cls(**config)
