"""Embedding factory: one JSON-able spec per id feature -> a Keras layer.

The model builder calls ``build_embedding(spec, vocab_counts, num_oov,
output_dim, name)`` for each id feature.  Ids come from a TF-Transform
vocabulary sorted by frequency (id 0 = most popular) with ``num_oov`` buckets
at the end, so ``input_dim = len(vocab_counts) + num_oov`` and OOV rows count
as frequency 0.  QR and MD layers return ``[batch, output_dim]`` for ids of
shape ``[batch]`` or ``[batch, 1]``; the plain ``keras.layers.Embedding`` used
for "full" (and QR's threshold fallback) keeps the input's rank, so feed it
``[batch]`` ids to get the same shape from every type.

Spec reference (keys not listed for a type are rejected)
--------------------------------------------------------
``{"type": "full"}``
    A plain ``keras.layers.Embedding(input_dim, output_dim)``.  No other keys.

``{"type": "qr", ...}`` -- quotient-remainder, trainer/qr_embedding.py
    num_buckets (int | None, default None)
        Base m, i.e. the remainder table size (DLRM's "collisions").  None
        picks ``ceil(input_dim ** (1 / num_partitions))`` unless
        ``compression`` is set.  Needs ``2 <= m < input_dim`` and
        ``m ** num_partitions >= input_dim``.
    compression (float | None, default None)
        Minimum ratio ``input_dim * output_dim / qr_params`` (> 1); exclusive
        with num_buckets.  QR parameters are ``sum_j rows_j(m) * dim_j``; for
        k = 2 and "mult"/"add" that is ``d * (m + ceil(n / m))``, so solving
        ``m + n / m = n / c`` gives::

            m = (n / c + sqrt((n / c) ** 2 - 4 * n)) / 2

        (the root with ``m >= sqrt(n)``; "concat" halves the widths, so use
        ``2 * n / c`` for ``n / c``).  The factory searches the integers in
        ``[ceil(n ** (1/k)), n - 1]`` for the m with the most parameters whose
        exact ratio is still at least c (a budget is never exceeded), which
        also covers k > 2; a c beyond the best achievable ratio gets the
        smallest m (maximum compression).
    num_partitions (int, default 2)
        Number of complementary partitions / tables, k >= 2.
    operation ("mult" | "add" | "concat", default "mult")
        How the k vectors combine; "concat" splits output_dim across tables.
    threshold (int, default 0)
        Vocabularies with ``input_dim <= threshold`` get a plain table instead
        (DLRM's qr_threshold): compressing tiny tables saves nothing.

``{"type": "md", ...}`` -- mixed-dimension, trainer/md_embedding.py
    Blocking -- at most one of:
    blocks (int, default 4, or ``len(dims)`` when dims is given)
        Number of blocks cut to hold equal frequency mass.
    block_fractions (list[float], default None)
        Fraction of the in-vocabulary rows in each block, head first; sums
        to 1.
    block_sizes (list[int], default None)
        Rows per block, head first; sums to the vocabulary size (OOV rows are
        then appended to the last block) or to ``input_dim``.
    In every case the OOV rows belong to the last block.

    Dimensions -- either an explicit list or the alpha power rule:
    dims (list[int], default None)
        Explicit dims, one per block (e.g. [64, 32, 16]); excludes alpha,
        base_dim and param_budget.
    alpha (float, default 0.3)
        Temperature of ``d_i = base_dim * (p_i / max p) ** alpha`` where p_i is
        the block's lookups per row (block frequency / block rows).
    base_dim (int | None, default None -> max_dim)
        Dim of the most popular block; at most max_dim.
    param_budget (int | None, default None)
        Instead of base_dim: the largest head dim whose total parameters
        (tables + projections, or the tail QR's tables) fit the budget.
    compression (float | None, default None)
        Instead of base_dim or param_budget: a budget that follows the
        vocabulary, ``param_budget = floor(input_dim * output_dim /
        compression)`` (> 1), i.e. at least this ratio to a full table.
    round_to_power_of_two (bool, default False)
        Round alpha-rule dims to the nearest power of two.
    min_dim (int, default 1)
        Floor on alpha-rule dims.
    fill_budget (bool, default False)
        With param_budget or compression: after the alpha rule, widen blocks
        (head first, dims kept non-increasing) with what rounding left of
        the budget (``md_embedding.widen_to_budget``).
    max_dim (int | None, default None -> output_dim)
        Cap on every alpha-rule block dim, below output_dim: with nested
        projections, dims past the partner table's widest never meet a
        non-zero coordinate (``trainer.model`` aligns the two tables).

    projection ("learned" | "nested", default "learned")
        How blocks narrower than output_dim reach it: a trained projection
        (counted in the budget) or zero padding (free); see
        trainer/md_embedding.py.

    tail_qr (dict | None, default None)
        Make the last (rarest) block a QR embedding.  Keys: num_buckets
        (default None), compression (default None), num_partitions
        (default 2), operation (default "mult"), with the meanings above,
        applied to the last block's rows and dim.

Memory report
-------------
``embedding_memory_report(layers, output_dim)`` lists every table of every
feature (plain tables, QR tables, MD tables and projections through one code
path) with params and fp32 bytes, and the ratio to a full
``input_dim x output_dim`` table.
"""

import math
from typing import Any, Dict, List, Mapping, Sequence

import keras

from trainer import md_embedding
from trainer import qr_embedding
from trainer.md_embedding import MDEmbedding
from trainer.qr_embedding import QREmbedding

_QR_KEYS = {"num_buckets": None, "compression": None, "num_partitions": 2, "operation": "mult"}
_SPEC_DEFAULTS = {
    "full": {},
    "qr": dict(_QR_KEYS, threshold=0),
    "md": {
        "blocks": None,
        "block_fractions": None,
        "block_sizes": None,
        "alpha": None,
        "base_dim": None,
        "param_budget": None,
        "compression": None,
        "dims": None,
        "round_to_power_of_two": False,
        "min_dim": 1,
        "fill_budget": False,
        "max_dim": None,
        "projection": "learned",
        "tail_qr": None,
    },
}
DEFAULT_MD_BLOCKS = 4
DEFAULT_MD_ALPHA = 0.3
_QR_SEARCH_WINDOW = 8
BYTES_PER_PARAM = 4  # fp32


def _with_defaults(
    spec: Mapping[str, Any], defaults: Mapping[str, Any], where: str
) -> Dict[str, Any]:
    unknown = sorted(set(spec) - set(defaults))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(defaults)}")
    return {**defaults, **spec}


def _exclusive(options: Dict[str, Any], keys: Sequence[str], where: str):
    given = [k for k in keys if options.get(k) is not None]
    if len(given) > 1:
        raise ValueError(f"{where}: {given} are mutually exclusive")


def qr_buckets_for_compression(
    input_dim: int,
    output_dim: int,
    compression: float,
    num_partitions: int = 2,
    operation: str = "mult",
) -> int:
    """The base m with the most parameters that still meets ``compression``.

    A budget is a ceiling: the chosen m has ``qr_params <= input_dim *
    output_dim / compression``, so a QR table never exceeds the memory it
    was given (the nearest ratio could overshoot by a few rows).  See the
    module docstring for the closed form at k = 2.  Parameters grow (almost)
    monotonically with m above ``ceil(n ** (1/k))``, so a binary search
    finds the crossing and a window around it is compared exactly.  A ratio
    no m reaches gets the smallest m (maximum compression).
    """
    n, d, k = int(input_dim), int(output_dim), int(num_partitions)
    if compression is None or not compression > 1:
        raise ValueError(f"compression must be > 1, got {compression}")
    lo = qr_embedding.default_num_buckets(n, k)
    hi = n - 1
    if lo > hi:
        raise ValueError(f"input_dim={n} is too small for a QR embedding")

    def params(m):
        return qr_embedding.qr_param_count(n, d, m, k, operation)

    budget = n * d / float(compression)
    a, b = lo, hi
    while a < b:  # smallest m with params(m) > budget
        mid = (a + b) // 2
        if params(mid) > budget:
            b = mid
        else:
            a = mid + 1
    # Ceil rounding makes params(m) wobble by a few rows near the crossing.
    window = range(max(lo, a - _QR_SEARCH_WINDOW), min(hi, a + _QR_SEARCH_WINDOW) + 1)
    fitting = [m for m in window if params(m) <= budget]
    if not fitting:
        return lo
    return max(fitting, key=lambda m: (params(m), -m))


def _resolve_qr(options: Mapping[str, Any], input_dim: int, output_dim: int) -> Dict[str, Any]:
    """QREmbedding kwargs (num_buckets, num_partitions, operation)."""
    _exclusive(options, ("num_buckets", "compression"), "qr spec")
    num_buckets = options["num_buckets"]
    if options["compression"] is not None:
        num_buckets = qr_buckets_for_compression(
            input_dim,
            output_dim,
            options["compression"],
            options["num_partitions"],
            options["operation"],
        )
    return {
        "num_buckets": num_buckets,
        "num_partitions": int(options["num_partitions"]),
        "operation": options["operation"],
    }


def _md_offsets(options: Mapping[str, Any], counts: Sequence[float], input_dim: int) -> List[int]:
    vocab_size = len(counts)
    if options["block_sizes"] is not None:
        sizes = list(options["block_sizes"])
        if sum(sizes) == vocab_size and input_dim > vocab_size:
            sizes[-1] += input_dim - vocab_size  # OOV rows join the tail
        return md_embedding.block_boundaries_from_counts(input_dim, sizes)
    if options["block_fractions"] is not None:
        offsets = md_embedding.block_boundaries_from_fractions(
            vocab_size, options["block_fractions"]
        )
    else:
        blocks = options["blocks"]
        if blocks is None:
            blocks = len(options["dims"]) if options["dims"] is not None else DEFAULT_MD_BLOCKS
        offsets = md_embedding.block_boundaries_equal_mass(counts, blocks)
    offsets[-1] = input_dim  # OOV rows join the tail
    return offsets


def _build_md(
    options: Dict[str, Any],
    counts: Sequence[float],
    input_dim: int,
    output_dim: int,
    name: str,
    initializer,
    regularizer,
) -> MDEmbedding:
    _exclusive(options, ("blocks", "block_fractions", "block_sizes"), "md spec")
    _exclusive(options, ("base_dim", "param_budget", "compression"), "md spec")
    for key in ("alpha", "base_dim", "param_budget", "compression", "max_dim"):
        if options["dims"] is not None and options[key] is not None:
            raise ValueError(f"md spec: 'dims' excludes {key!r}")
    projection = md_embedding.check_projection(options["projection"])
    max_dim = output_dim if options["max_dim"] is None else int(options["max_dim"])
    if not 1 <= max_dim <= output_dim:
        raise ValueError(f"md spec: max_dim must be in [1, output_dim={output_dim}], got {max_dim}")
    tail_qr = options["tail_qr"]
    if tail_qr is not None:
        tail_qr = _with_defaults(tail_qr, _QR_KEYS, "md spec 'tail_qr'")

    if options["compression"] is not None:
        if not options["compression"] > 1:
            raise ValueError(f"md spec: compression must be > 1, got {options['compression']}")
        options = dict(options, param_budget=int(input_dim * output_dim // options["compression"]))

    offsets = _md_offsets(options, counts, input_dim)
    rows = [hi - lo for lo, hi in zip(offsets[:-1], offsets[1:])]

    def tail_kwargs(dims):
        return _resolve_qr(tail_qr, rows[-1], dims[-1])

    if options["dims"] is not None:
        dims = [int(d) for d in options["dims"]]
        if len(dims) != len(rows):
            raise ValueError(f"md spec: {len(rows)} blocks but {len(dims)} dims {dims}")
    else:
        alpha = DEFAULT_MD_ALPHA if options["alpha"] is None else options["alpha"]
        popularity = md_embedding.block_popularity(counts, offsets)
        rounding = bool(options["round_to_power_of_two"])
        min_dim = int(options["min_dim"])

        def dims_for_base(base):
            return md_embedding.alpha_power_dims(popularity, alpha, base, rounding, min_dim)

        if options["param_budget"] is not None:

            def cost(dims):
                total = md_embedding.md_param_count(rows, dims, output_dim, projection)
                if tail_qr is not None:
                    total += (
                        qr_embedding.qr_param_count(rows[-1], dims[-1], **tail_kwargs(dims))
                        - rows[-1] * dims[-1]
                    )
                return total

            dims = md_embedding.largest_fitting_dims(
                dims_for_base, cost, max_dim, int(options["param_budget"]), min_dim
            )
            if options["fill_budget"]:
                dims = md_embedding.widen_to_budget(
                    dims, cost, max_dim, int(options["param_budget"])
                )
        else:
            base_dim = max_dim if options["base_dim"] is None else int(options["base_dim"])
            if base_dim > max_dim:
                raise ValueError(f"md spec: base_dim={base_dim} exceeds max_dim={max_dim}")
            dims = dims_for_base(base_dim)

    kwargs = {}
    if initializer is not None:
        kwargs["embeddings_initializer"] = initializer
    return MDEmbedding(
        block_offsets=offsets,
        block_dims=dims,
        output_dim=output_dim,
        projection=projection,
        tail_qr=None if tail_qr is None else tail_kwargs(dims),
        embeddings_regularizer=regularizer,
        name=name,
        **kwargs,
    )


def _plain(input_dim, output_dim, name, initializer, regularizer):
    return keras.layers.Embedding(
        input_dim,
        output_dim,
        embeddings_initializer=("uniform" if initializer is None else initializer),
        embeddings_regularizer=regularizer,
        name=name,
    )


def build_embedding(
    spec: Mapping[str, Any],
    vocab_counts: Sequence[int],
    num_oov: int,
    output_dim: int,
    name: str,
    regularizer=None,
    initializer=None,
) -> keras.layers.Layer:
    """Builds the embedding layer described by ``spec`` (see module docstring).

    Args:
      spec: JSON-able dict with a "type" of "full", "qr" or "md".
      vocab_counts: frequency of each in-vocabulary id, sorted descending
        (len = vocab_size).
      num_oov: number of OOV buckets after the vocabulary.
      output_dim: embedding width returned for every id.
      name: layer name.
      regularizer: optional Keras regularizer for every table.
      initializer: table initializer; None (default) keeps each layer's own
        default ("uniform" for plain and MD tables, QR's variance-matched
        uniform).

    Raises:
      ValueError: on an unknown type or key, conflicting keys, or sizes that
        the chosen technique cannot honour.
    """
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in _SPEC_DEFAULTS:
        raise ValueError(
            f"unknown embedding type {kind!r} for {name!r}; allowed: {sorted(_SPEC_DEFAULTS)}"
        )
    options = _with_defaults(spec, _SPEC_DEFAULTS[kind], f"{kind!r} spec for {name!r}")
    counts = [float(c) for c in vocab_counts]
    input_dim = len(counts) + int(num_oov)
    if input_dim < 1:
        raise ValueError(f"{name!r}: empty vocabulary and no OOV buckets")

    if kind == "full" or (kind == "qr" and input_dim <= options["threshold"]):
        return _plain(input_dim, output_dim, name, initializer, regularizer)
    if kind == "qr":
        return QREmbedding(
            input_dim,
            output_dim,
            embeddings_initializer=initializer,
            embeddings_regularizer=regularizer,
            name=name,
            **_resolve_qr(options, input_dim, output_dim),
        )
    return _build_md(options, counts, input_dim, output_dim, name, initializer, regularizer)


def layer_tables(layer: keras.layers.Layer) -> List[Dict[str, Any]]:
    """``[{"name", "rows", "dim"}, ...]`` for any layer this module builds."""
    if hasattr(layer, "tables"):
        return list(layer.tables())
    if isinstance(layer, keras.layers.Embedding):
        return [{"name": "embeddings", "rows": int(layer.input_dim), "dim": int(layer.output_dim)}]
    raise TypeError(f"no memory report for layer type {type(layer).__name__}")


def _ratios(params: int, full: int) -> Dict[str, float]:
    return {
        "ratio_to_full": params / full if full else 0.0,
        "compression": full / params if params else 0.0,
    }


def embedding_memory_report(
    layers: Mapping[str, keras.layers.Layer], output_dim: int
) -> Dict[str, Any]:
    """Parameters and fp32 bytes per feature and table, vs full tables.

    Returns a JSON-serialisable dict::

        {"features": {feature: {"type", "input_dim", "tables": [{"name",
            "rows", "dim", "params", "bytes"}], "params", "bytes",
            "full_params", "full_bytes", "ratio_to_full", "compression"}},
         "total": {"params", "bytes", "full_params", "full_bytes",
                   "ratio_to_full", "compression"}}

    ``ratio_to_full`` is params / (input_dim * output_dim); ``compression`` is
    its inverse.
    """
    features = {}
    total_params = total_full = 0
    for feature, layer in layers.items():
        tables = [
            dict(
                t,
                rows=int(t["rows"]),
                dim=int(t["dim"]),
                params=int(t["rows"]) * int(t["dim"]),
                bytes=int(t["rows"]) * int(t["dim"]) * BYTES_PER_PARAM,
            )
            for t in layer_tables(layer)
        ]
        params = sum(t["params"] for t in tables)
        input_dim = int(layer.input_dim)
        full = input_dim * int(output_dim)
        features[feature] = {
            "type": type(layer).__name__,
            "input_dim": input_dim,
            "tables": tables,
            "params": params,
            "bytes": params * BYTES_PER_PARAM,
            "full_params": full,
            "full_bytes": full * BYTES_PER_PARAM,
            **_ratios(params, full),
        }
        total_params += params
        total_full += full
    return {
        "features": features,
        "total": {
            "params": total_params,
            "bytes": total_params * BYTES_PER_PARAM,
            "full_params": total_full,
            "full_bytes": total_full * BYTES_PER_PARAM,
            **_ratios(total_params, total_full),
        },
    }
