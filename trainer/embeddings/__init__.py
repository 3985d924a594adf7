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
        ``compression`` is set.  Needs ``m >= 2`` and ``m ** num_partitions
        >= input_dim``; ``m >= input_dim`` gives a plain table (see below).
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

Checks, and vocabularies smaller than a spec
--------------------------------------------
``parse_spec`` (``validate_spec``) checks a spec without data: the type,
unknown keys, every value's type and range, keys that exclude each other,
widths against the model's.  ``ModelConfig`` calls it on construction, so the
runners refuse a bad spec before any component runs, with a ``SpecError``: one
line naming the key and what it allows.  This module imports Keras only where
a layer is built, so checking a spec does not import TensorFlow.

``build_embedding`` then meets the vocabulary as far as it allows; each change
is logged as a warning and listed in the layer's ``adaptations`` (and the
memory report):

- MD asked for more blocks than the vocabulary has ids gets one block per id
  (explicit ``dims`` keep their head, ``block_fractions`` merge their tail);
- a QR table (or an MD ``tail_qr``) with no more rows than buckets, so no
  smaller than a plain table, becomes a plain table (QR needs 3+ rows).

What it cannot meet raises ``SpecVocabularyError``, one line starting with the
table's name: ``block_sizes`` that sum to neither the vocabulary nor the table,
an explicit ``num_buckets`` too small to tell the rows apart, a
``param_budget`` too small for the rows.

Memory report
-------------
``embedding_memory_report(layers, output_dim)`` lists every table of every
feature (plain tables, QR tables, MD tables and projections through one code
path) with params and fp32 bytes, and the ratio to a full
``input_dim x output_dim`` table.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import keras

# Keras and TensorFlow are imported only where a layer is built: the runners
# check every spec (``validate_spec``) before any component runs, and saying
# that a setting is wrong must neither wait for nor print TensorFlow's import.

_log = logging.getLogger(__name__)

# Copies of qr_embedding.OPERATIONS and md_embedding.PROJECTIONS (those
# modules import Keras); embeddings_test checks they agree.
QR_OPERATIONS = ("mult", "add", "concat")
MD_PROJECTIONS = ("learned", "nested")

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


class SpecError(ValueError):
    """A spec that is wrong whatever the data: an unknown type or key, a value
    of the wrong type or out of range, keys that exclude each other."""


class SpecVocabularyError(ValueError):
    """A spec the vocabulary cannot honour (``block_sizes`` that do not sum to
    it, too few QR buckets to tell its ids apart, a budget too small for its
    rows). Raised by ``build_embedding``, so in the Trainer; the message is
    one line that starts with the table's name (``user_embedding: ...``)."""


# ---------------------------------------------------------------------------
# Checking a spec (no vocabulary needed).


def _shown(value: Any) -> str:
    """A value as the user wrote it in JSON."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _or_null(optional: bool) -> str:
    return " (or null)" if optional else ""


def _check_int(options: Mapping[str, Any], key: str, low: int, high: Optional[int] = None):
    value = options[key]
    optional = _SPEC_OPTIONAL.get(key, False)
    if value is None and optional:
        return
    if not _is_int(value) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SpecError(
            f"{key} must be an integer {allowed}{_or_null(optional)}, got {_shown(value)}"
        )


def _check_number(options: Mapping[str, Any], key: str, above: float, inclusive: bool = False):
    value = options[key]
    optional = _SPEC_OPTIONAL.get(key, False)
    if value is None and optional:
        return
    if not _is_number(value) or value < above or (value == above and not inclusive):
        allowed = f"{'>=' if inclusive else '>'} {above:g}"
        raise SpecError(
            f"{key} must be a number {allowed}{_or_null(optional)}, got {_shown(value)}"
        )


def _check_bool(options: Mapping[str, Any], key: str):
    if not isinstance(options[key], bool):
        raise SpecError(f"{key} must be true or false, got {_shown(options[key])}")


def _check_choice(options: Mapping[str, Any], key: str, choices: Sequence[str]):
    if options[key] not in choices:
        raise SpecError(
            f"{key} must be one of {', '.join(_shown(c) for c in choices)}, "
            f"got {_shown(options[key])}"
        )


def _check_list(options: Mapping[str, Any], key: str, is_item, item: str):
    value = options[key]
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or not value or not all(is_item(v) for v in value):
        raise SpecError(f"{key} must be a non-empty list of {item} (or null), got {_shown(value)}")


# Keys whose default is None take null; the others must hold a value.
_SPEC_OPTIONAL = {
    key: default is None
    for defaults in _SPEC_DEFAULTS.values()
    for key, default in defaults.items()
}


def _with_defaults(
    spec: Mapping[str, Any], defaults: Mapping[str, Any], where: str
) -> Dict[str, Any]:
    unknown = [key for key in spec if key not in defaults]
    if unknown:
        keys = ", ".join(repr(k) for k in unknown)
        known = ", ".join(defaults) if defaults else "none"
        raise SpecError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {keys} {where} (known: {known})"
        )
    return {**defaults, **spec}


def _exclusive(options: Mapping[str, Any], keys: Sequence[str]):
    given = [k for k in keys if options.get(k) is not None]
    if len(given) > 1:
        raise SpecError(
            f"{' and '.join(given)} are mutually exclusive: set one of {', '.join(keys)}"
        )


def _check_qr(options: Mapping[str, Any], output_dim: Optional[int]):
    _check_int(options, "num_buckets", 2)
    _check_number(options, "compression", 1)
    _exclusive(options, ("num_buckets", "compression"))
    _check_int(options, "num_partitions", 2)
    _check_choice(options, "operation", QR_OPERATIONS)
    if "threshold" in options:
        _check_int(options, "threshold", 0)
    k = options["num_partitions"]
    if options["operation"] == "concat" and output_dim is not None and output_dim < k:
        raise SpecError(
            f'operation "concat" gives each of the num_partitions={k} tables a share of '
            f"the width, but the width is {output_dim}"
        )


def _check_md(options: Dict[str, Any], output_dim: Optional[int]):
    _check_int(options, "blocks", 1)
    _check_list(options, "block_fractions", lambda v: _is_number(v) and v > 0, "numbers > 0")
    fractions = options["block_fractions"]
    if fractions is not None and abs(sum(fractions) - 1.0) > 1e-6:
        raise SpecError(
            f"block_fractions must sum to 1, got {_shown(fractions)} (sum {sum(fractions):g})"
        )
    _check_list(options, "block_sizes", lambda v: _is_int(v) and v >= 1, "integers >= 1")
    _exclusive(options, ("blocks", "block_fractions", "block_sizes"))
    _check_number(options, "alpha", 0, inclusive=True)
    _check_int(options, "base_dim", 1)
    _check_int(options, "param_budget", 1)
    _check_number(options, "compression", 1)
    _exclusive(options, ("base_dim", "param_budget", "compression"))
    dims_item = "integers >= 1" if output_dim is None else f"integers in [1, {output_dim}]"
    _check_list(
        options,
        "dims",
        lambda v: _is_int(v) and 1 <= v <= (output_dim or v),
        dims_item + ("" if output_dim is None else " (the embedding width)"),
    )
    _check_bool(options, "round_to_power_of_two")
    _check_int(options, "min_dim", 1)
    _check_bool(options, "fill_budget")
    _check_int(options, "max_dim", 1, output_dim)
    _check_choice(options, "projection", MD_PROJECTIONS)
    dims = options["dims"]
    if dims is not None:
        for key in ("alpha", "base_dim", "param_budget", "compression", "max_dim"):
            if options[key] is not None:
                raise SpecError(f"dims (explicit block widths) excludes {key}")
        for key, value in (
            ("blocks", options["blocks"]),
            ("block_fractions", len(fractions) if fractions is not None else None),
            ("block_sizes", len(options["block_sizes"] or []) or None),
        ):
            if value is not None and value != len(dims):
                raise SpecError(
                    f"dims {_shown(dims)} has {len(dims)} widths but {key} gives {value} blocks"
                )
    widest = options["max_dim"] if options["max_dim"] is not None else output_dim
    if widest is not None and options["base_dim"] is not None and options["base_dim"] > widest:
        limit = "max_dim" if options["max_dim"] is not None else "the embedding width"
        raise SpecError(f"base_dim={options['base_dim']} exceeds {limit} ({widest})")
    if dims is None and widest is not None and options["min_dim"] > widest:
        limit = "max_dim" if options["max_dim"] is not None else "the embedding width"
        raise SpecError(f"min_dim={options['min_dim']} exceeds {limit} ({widest})")
    tail_qr = options["tail_qr"]
    if tail_qr is not None:
        if not isinstance(tail_qr, Mapping):
            raise SpecError(
                f"tail_qr must be a JSON object of QR keys (or null), got {_shown(tail_qr)}"
            )
        try:
            tail_qr = _with_defaults(tail_qr, _QR_KEYS, "in tail_qr")
            _check_qr(tail_qr, None)
        except SpecError as error:
            raise SpecError(f"tail_qr: {error}") from None
        options["tail_qr"] = tail_qr


def parse_spec(spec: Any, output_dim: Optional[int] = None) -> Tuple[str, Dict[str, Any]]:
    """``(type, options with defaults)`` of a spec, every key checked.

    Checks what needs no data: the type, unknown keys, each value's type and
    range, keys that exclude each other, and, when ``output_dim`` (the
    model's embedding width) is given, the widths against it. What depends
    on the vocabulary is settled by ``build_embedding``.

    Raises:
      SpecError: with a one-line message naming the key and what it allows.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f'expected a JSON object with a "type", got {_shown(spec)}')
    allowed = ", ".join(sorted(_SPEC_DEFAULTS))
    if "type" not in spec:
        raise SpecError(f'missing "type"; allowed: {allowed}')
    kind = spec["type"]
    if kind not in _SPEC_DEFAULTS:
        raise SpecError(f"unknown embedding type {_shown(kind)}; allowed: {allowed}")
    options = _with_defaults(
        {k: v for k, v in spec.items() if k != "type"}, _SPEC_DEFAULTS[kind], f"for type {kind}"
    )
    if kind == "qr":
        _check_qr(options, output_dim)
    elif kind == "md":
        _check_md(options, output_dim)
    return kind, options


def validate_spec(spec: Any, output_dim: Optional[int] = None) -> None:
    """Raises ``SpecError`` (one line) for a spec that is wrong whatever the data."""
    parse_spec(spec, output_dim)


# ---------------------------------------------------------------------------
# Resolving a spec against the vocabulary.


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
    from trainer import qr_embedding

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


def _rows_text(rows: int, vocab_size: Optional[int] = None) -> str:
    if vocab_size is None or vocab_size == rows:
        return f"{rows} row{'s' if rows != 1 else ''}"
    return f"{rows} rows ({_plural(vocab_size, 'id')} + {rows - vocab_size} OOV)"


def _qr_misfit(
    options: Mapping[str, Any], rows: int, vocab_size: Optional[int] = None
) -> Optional[str]:
    """Why ``rows`` are too few for the QR table ``options`` asks for (then a
    plain table is the most a table of that size can be), or None.

    Raises:
      SpecVocabularyError: an explicit ``num_buckets`` too small to give each
        of the rows its own tuple of QR rows (ids would collide).
    """
    from trainer import qr_embedding

    k = int(options["num_partitions"])
    smallest = qr_embedding.default_num_buckets(rows, k)
    m = smallest if options["num_buckets"] is None else int(options["num_buckets"])
    if m >= rows:
        asked = "" if options["num_buckets"] is None else f"num_buckets={m}: "
        return (
            f"{asked}{_rows_text(rows, vocab_size)} are too few for QR, whose {m} buckets "
            "must be fewer than the rows (else it is no smaller than a plain table)"
        )
    if m**k < rows:
        raise SpecVocabularyError(
            f"num_buckets={m} with num_partitions={k} gives {m**k} distinct QR rows, fewer "
            f"than the table's {_rows_text(rows, vocab_size)}, so ids would collide: use "
            f"num_buckets >= {qr_embedding.integer_root_ceil(rows, k)} or leave it unset"
        )
    return None


def _resolve_qr(options: Mapping[str, Any], input_dim: int, output_dim: int) -> Dict[str, Any]:
    """QREmbedding kwargs (num_buckets, num_partitions, operation)."""
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _md_blocking(
    options: Mapping[str, Any], counts: Sequence[float], input_dim: int, notes: List[str]
) -> Tuple[List[int], Optional[List[int]]]:
    """Block offsets, and the explicit dims for those blocks (or None).

    Asked for more blocks than the vocabulary has ids, the table gets one
    block per id (``blocks`` and ``dims``: the first ones; ``block_fractions``:
    the last ones merged) and a note says so.
    """
    from trainer import md_embedding

    vocab_size = len(counts)
    dims = None if options["dims"] is None else [int(d) for d in options["dims"]]
    if options["block_sizes"] is not None:
        sizes = [int(s) for s in options["block_sizes"]]
        if sum(sizes) == vocab_size and input_dim > vocab_size:
            sizes[-1] += input_dim - vocab_size  # OOV rows join the tail
        elif sum(sizes) != input_dim:
            raise SpecVocabularyError(
                f"block_sizes {_shown(options['block_sizes'])} sum to {sum(sizes)}, but the "
                f"table has {_rows_text(input_dim, vocab_size)}: they must sum to "
                + (f"{vocab_size} or {input_dim}" if input_dim > vocab_size else str(input_dim))
            )
        return md_embedding.block_boundaries_from_counts(input_dim, sizes), dims
    fractions = options["block_fractions"]
    if fractions is not None:
        asked = len(fractions)
    elif options["blocks"] is not None:
        asked = int(options["blocks"])
    else:
        asked = len(dims) if dims is not None else DEFAULT_MD_BLOCKS
    blocks = min(asked, max(vocab_size, 1))
    if blocks < asked:
        notes.append(
            f"{_plural(asked, 'MD block')} asked for, but the vocabulary has "
            f"{_plural(vocab_size, 'id')}: {_plural(blocks, 'block')}"
            + (f", dims {dims[:blocks]}" if dims is not None else "")
        )
        if dims is not None:
            dims = dims[:blocks]
        if fractions is not None:
            fractions = list(fractions[: blocks - 1]) + [sum(fractions[blocks - 1 :])]
    if blocks == 1:
        offsets = [0, input_dim]
    elif fractions is not None:
        offsets = md_embedding.block_boundaries_from_fractions(vocab_size, fractions)
    else:
        offsets = md_embedding.block_boundaries_equal_mass(counts, blocks)
    offsets[-1] = input_dim  # OOV rows join the tail
    return offsets, dims


def _build_md(
    options: Dict[str, Any],
    counts: Sequence[float],
    input_dim: int,
    output_dim: int,
    name: str,
    initializer,
    regularizer,
    notes: List[str],
):
    from trainer import md_embedding
    from trainer import qr_embedding

    projection = options["projection"]
    max_dim = output_dim if options["max_dim"] is None else int(options["max_dim"])
    if options["compression"] is not None:
        options = dict(options, param_budget=int(input_dim * output_dim // options["compression"]))

    offsets, dims = _md_blocking(options, counts, input_dim, notes)
    rows = [hi - lo for lo, hi in zip(offsets[:-1], offsets[1:])]
    tail_qr = options["tail_qr"]
    if tail_qr is not None:
        try:
            misfit = _qr_misfit(tail_qr, rows[-1])
        except SpecVocabularyError as error:
            raise SpecVocabularyError(f"tail_qr: {error}") from None
        if misfit:
            notes.append(f"tail_qr: {misfit}: the last MD block is a plain table")
            tail_qr = None

    def tail_kwargs(dims):
        return _resolve_qr(tail_qr, rows[-1], dims[-1])

    if dims is None:
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
                raise SpecVocabularyError(f"base_dim={base_dim} exceeds max_dim={max_dim}")
            dims = dims_for_base(base_dim)

    kwargs = {}
    if initializer is not None:
        kwargs["embeddings_initializer"] = initializer
    return md_embedding.MDEmbedding(
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
    import keras

    return keras.layers.Embedding(
        input_dim,
        output_dim,
        embeddings_initializer=("uniform" if initializer is None else initializer),
        embeddings_regularizer=regularizer,
        name=name,
    )


def _build(kind, options, counts, num_oov, output_dim, name, initializer, regularizer, notes):
    from trainer import qr_embedding

    vocab_size = len(counts)
    input_dim = vocab_size + int(num_oov)
    if input_dim < 1:
        raise SpecVocabularyError("empty vocabulary and no OOV buckets")
    if kind == "full" or (kind == "qr" and input_dim <= options["threshold"]):
        return _plain(input_dim, output_dim, name, initializer, regularizer)
    if vocab_size == 0:
        notes.append(f"the vocabulary is empty: a plain table of {_rows_text(input_dim)}")
        return _plain(input_dim, output_dim, name, initializer, regularizer)
    if kind == "qr":
        misfit = _qr_misfit(options, input_dim, vocab_size)
        if misfit:
            notes.append(f"{misfit}: a plain table is used")
            return _plain(input_dim, output_dim, name, initializer, regularizer)
        return qr_embedding.QREmbedding(
            input_dim,
            output_dim,
            embeddings_initializer=initializer,
            embeddings_regularizer=regularizer,
            name=name,
            **_resolve_qr(options, input_dim, output_dim),
        )
    return _build_md(options, counts, input_dim, output_dim, name, initializer, regularizer, notes)


def build_embedding(
    spec: Mapping[str, Any],
    vocab_counts: Sequence[int],
    num_oov: int,
    output_dim: int,
    name: str,
    regularizer=None,
    initializer=None,
) -> "keras.layers.Layer":
    """Builds the embedding layer described by ``spec`` (see module docstring).

    A vocabulary too small for what the spec asks is met as far as it allows
    (fewer MD blocks, a plain table where QR would be no smaller); each such
    change is logged as a warning and listed in the layer's ``adaptations``
    (a tuple of one-line notes, also in ``embedding_memory_report``).

    Args:
      spec: JSON-able dict with a "type" of "full", "qr" or "md".
      vocab_counts: frequency of each in-vocabulary id, sorted descending
        (len = vocab_size).
      num_oov: number of OOV buckets after the vocabulary.
      output_dim: embedding width returned for every id.
      name: layer name, also the start of every error message and note.
      regularizer: optional Keras regularizer for every table.
      initializer: table initializer; None (default) keeps each layer's own
        default ("uniform" for plain and MD tables, QR's variance-matched
        uniform).

    Raises:
      SpecError: a spec that is wrong whatever the data (``parse_spec``).
      SpecVocabularyError: sizes that the vocabulary cannot honour.
      Both are ValueErrors with one-line messages starting with ``name``.
    """
    try:
        kind, options = parse_spec(spec, int(output_dim))
    except SpecError as error:
        raise SpecError(f"{name}: {error}") from None
    counts = [float(c) for c in vocab_counts]
    notes: List[str] = []
    try:
        layer = _build(
            kind, options, counts, num_oov, int(output_dim), name, initializer, regularizer, notes
        )
    except ValueError as error:  # what the chosen technique cannot do with these sizes
        raise SpecVocabularyError(f"{name}: {error}") from error
    for note in notes:
        _log.warning("%s: %s", name, note)
    layer.adaptations = tuple(notes)
    return layer


# ---------------------------------------------------------------------------
# Memory report.


def layer_tables(layer: keras.layers.Layer) -> List[Dict[str, Any]]:
    """``[{"name", "rows", "dim"}, ...]`` for any layer this module builds."""
    import keras

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
    its inverse. A feature whose table the vocabulary made ``build_embedding``
    change also has ``"adaptations"``: the one-line notes saying what changed.
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
        if getattr(layer, "adaptations", ()):
            features[feature]["adaptations"] = list(layer.adaptations)
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
