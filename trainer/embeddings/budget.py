"""Memory budgets for every id-indexed table: the embeddings and the per-id biases.

A budget is a ratio (``64x``) or a size (``20MB``). A ratio counts against the
reference model's id-indexed memory: full ``REFERENCE_DIM``-wide tables plus
full (one scalar per id) biases, on both sides; a size counts fp32 bytes. So
``64x`` allows ``sum(input_dim) * (64 + 1) / 64`` parameters, which full
biases alone (``sum(input_dim)``) nearly fill: past 64x the biases are
compressed too (``bias_spec``).

``fit`` turns one technique's spec into specs that keep a budget: each side
gets a share of the budget in proportion to its ids; its biases stay full
while they fit in it, because a compressed bias costs more accuracy than any
table buys back (benchmarks/results/bias_compression.md), and past that take
``BIAS_SHARE`` of it; the embedding spec's knob gets the rest. Where a
technique's smallest table at the model's width does not fit, the width
narrows. Nothing here imports Keras: sizes come from the specs'
``resolve`` (``trainer.embeddings.build_tables``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.embeddings.memory import BYTES_PER_PARAM
from trainer.embeddings.qr import integer_root_ceil
from trainer.embeddings.spec import Vocabulary

REFERENCE_DIM = 64
# Full biases fit a side's share up to this ratio (64 + 1 parameters per id / 1).
FULL_BIASES_UP_TO = REFERENCE_DIM + 1
# The share of a side's budget its compressed biases get (the rest: embeddings):
# on ML-100K at 64x three quarters lost far less than a quarter
# (benchmarks/results/bias_compression.md).
BIAS_SHARE = 0.75
# Own biases for the most rated ids (``bias_spec``'s "head") only where ids are
# rated unequally: the coefficient of variation of ratings per id is at least
# this. Where every id has about as many ratings, the most rated are no more
# worth a row than the rest, and QR add over all ids did better
# (benchmarks/results/extreme.md, synthetic-wide-dense's users: 0.13; every
# other side of every data set: 0.77 or more).
HEAD_MIN_SPREAD = 0.5


def training_changes(biases: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Training settings that go with ``fit``'s biases: no per-id prior once they are compressed.

    The per-id prior (``l2_per_id``) shrinks each id's row by its own count;
    with compressed biases the tables beside them have a few hundred rows,
    each shared by many ids, and the prior held QR "add" back on ML-100K at
    128x (benchmarks/results/extreme_prior.md).
    """
    compressed = any(spec is not None and spec.get("type") != "full" for spec in biases.values())
    return {"l2_per_id": 0.0} if compressed else {}


_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(x|[kmg]i?b|b)?\s*$", re.I)


class BudgetError(ValueError):
    """A budget that is not a ratio > 1 or a positive size; one line."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """``ratio`` times fewer id-indexed parameters than the reference, or ``bytes`` of fp32."""

    ratio: float | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"64x"`` (a ratio >= 1) or ``"20MB"``, ``"512KiB"``, ``"1000000"`` (bytes)."""
        match = _BUDGET.match(str(text))
        if not match:
            raise BudgetError(
                f"expected a ratio such as 64x or a size such as 20MB or 512KiB, got {text!r}"
            )
        value, unit = float(match[1]), (match[2] or "b").lower()
        if unit == "x":
            if value < 1:
                raise BudgetError(f"a ratio must be at least 1x, got {text!r}")
            return cls(ratio=value)
        size = int(value * _UNITS[unit])
        if size < BYTES_PER_PARAM:
            raise BudgetError(f"a size must hold at least one fp32 parameter, got {text!r}")
        return cls(bytes=size)

    def params(self, input_dims: Mapping[str, int]) -> int:
        """The most id-indexed parameters allowed over tables of ``input_dims`` ids."""
        if self.ratio is not None:
            return math.floor(reference_params(input_dims) / self.ratio)
        return self.bytes // BYTES_PER_PARAM

    def ratio_for(self, input_dims: Mapping[str, int]) -> float:
        """The budget as a ratio to the reference."""
        if self.ratio is not None:
            return self.ratio
        return reference_params(input_dims) / self.params(input_dims)

    def __str__(self) -> str:
        if self.ratio is not None:
            return f"{self.ratio:g}x"
        return f"{self.bytes:,} bytes"


def reference_params(input_dims: Mapping[str, int]) -> int:
    """Full ``REFERENCE_DIM``-wide tables plus full biases over ``input_dims`` ids."""
    return sum(int(n) for n in input_dims.values()) * (REFERENCE_DIM + 1)


def qr_add_buckets(n: int, allowed: int) -> int | None:
    """The largest base m whose one-wide QR "add" table (``m + ceil(n / m)`` rows)
    fits ``allowed`` parameters, or None when none does."""
    low = max(2, integer_root_ceil(n, 2))
    if low >= n or low + -(-n // low) > allowed:
        return None
    # m + n/m grows with m above sqrt(n): solve m + n/m = allowed, then step down.
    m = min(n - 1, int((allowed + math.sqrt(max(allowed * allowed - 4 * n, 0))) / 2))
    while m > low and m + -(-n // m) > allowed:
        m -= 1
    return m


_TAIL_ROOM = 1.25


def _head_qr_bias(n: int, vocab_size: int, allowed: int) -> dict[str, Any] | None:
    """Own biases for the most rated ids, a QR "add" table for the rest, within ``allowed``.

    Written as ratios (the head's share of the vocabulary, the tail's QR
    compression), so a spec fitted to an upper bound on the vocabulary (the
    local runner counts the whole file, Transform only the train split) still
    builds on the one the Trainer reads. The tail gets a quarter more than
    its smallest QR table, because that shrinks only as the square root of a
    smaller vocabulary (down to 0.64 of this one, it still keeps the ratio);
    one parameter is kept spare for the head's cut, which rounds to a row.
    """
    spare = 1
    for head in range(min(allowed - spare, vocab_size - 1), 0, -1):
        tail = n - head
        m = max(2, integer_root_ceil(tail, 2))
        if m < tail and head + _TAIL_ROOM * (m + -(-tail // m)) + spare <= allowed:
            share = head / vocab_size
            return {
                "type": "md",
                "block_fractions": [share, 1 - share],
                "dims": [1, 1],
                "projection": "nested",
                "tail_qr": {"operation": "add", "compression": tail / (allowed - head - spare)},
            }
    return None


def rating_spread(counts) -> float:
    """The coefficient of variation (std / mean) of ratings per id; 0 without ratings."""
    counts = np.asarray(counts, dtype=np.float64)
    mean = counts.mean() if counts.size else 0.0
    return float(counts.std() / mean) if mean > 0 else 0.0


def bias_spec(
    n: int, allowed: int, technique: str = "qr", vocab: Vocabulary | None = None
) -> dict[str, Any] | None:
    """A one-wide table for the biases of ``n`` ids within ``allowed`` parameters.

    Full when it fits; else quotient-remainder "add", ``b(id % m) + b(id // m)``,
    with the largest m that fits: ids are frequency ranks, so the m most
    rated ids keep a row of their own and the quotient rows are bands of
    neighbouring ranks, which share a popularity; it lost less than hashing
    (benchmarks/results/bias_compression.md). ``technique`` "head" gives the
    most rated ids of ``vocab`` their own biases and QR add the rest, where
    its ratings per id spread (``HEAD_MIN_SPREAD``). Too few parameters for
    two QR tables: hashed into what there is; none: None.
    """
    if allowed >= n:
        return {"type": "full"}
    if technique == "head" and vocab is not None and vocab.size:
        if rating_spread(vocab.counts) >= HEAD_MIN_SPREAD:
            spec = _head_qr_bias(n, vocab.size, allowed)
            if spec is not None:
                return spec
    # Ratios rather than counts, so a spec sized here follows the vocabulary
    # the Trainer reads; the half keeps the float ratio from rounding a row off.
    ratio = n / (allowed + 0.5)
    if technique != "hash" and qr_add_buckets(n, allowed) is not None:
        return {"type": "qr", "operation": "add", "compression": ratio}
    if allowed >= 1:
        return {"type": "hash", "compression": ratio}
    return None


def _set_knob(spec: Mapping[str, Any], n: int, dim: int, allowed: int) -> dict[str, Any]:
    """``spec`` sized to ``allowed`` parameters at width ``dim`` (its "compression")."""
    spec = dict(spec)
    if spec["type"] == "full":
        return spec
    if spec["type"] == "md" and "dims" in spec and isinstance(spec.get("tail_qr"), dict):
        # A head of plain rows and a QR tail, each given half of the parameters.
        head = min(0.5, allowed / 2 / (dim * n))
        tail_rows = (1 - head) * n
        tail_ratio = tail_rows * dim / max(allowed - head * n * dim, 1)
        spec.update(block_fractions=[head, 1 - head], dims=[dim, dim])
        spec["tail_qr"] = {**spec["tail_qr"], "compression": max(tail_ratio, 1.0 + 1e-9)}
        spec.pop("blocks", None)
        return spec
    ratio = max(n * dim / max(allowed, 1), 1.0 + 1e-9)
    if "compression" in spec or spec["type"] in ("hash", "qr", "md"):
        spec.pop("num_buckets", None)
        spec.pop("param_budget", None)
        spec["compression"] = ratio
    return spec


@dataclasses.dataclass(frozen=True)
class Fitted:
    """Specs that keep a budget, and their sizes (``None`` specs: no biases)."""

    embedding_dim: int
    embeddings: dict[str, dict[str, Any]]
    biases: dict[str, dict[str, Any] | None]
    params: dict[str, int]  # per table name, biases as "<name>_bias"
    limit: int

    @property
    def total(self) -> int:
        return sum(self.params.values())


def _resolve(specs, vocabularies, dim) -> dict[str, int] | None:
    from trainer.embeddings import build_tables

    try:
        tables = build_tables(specs, vocabularies, dim)
    except ValueError:
        return None
    return {name: int(table.params) for name, table in tables.items()}


def fit(
    spec: Mapping[str, Any],
    vocabularies: Mapping[str, Vocabulary],
    limit: int,
    embedding_dim: int,
    bias_share: float = BIAS_SHARE,
    biases: bool = True,
    bias_technique: str = "qr",
    compress_biases: bool = False,
) -> Fitted | None:
    """``spec`` (one technique, the same for every table) sized so that the
    tables of ``vocabularies`` and their biases hold at most ``limit``
    parameters, at the widest width up to ``embedding_dim`` that fits.

    Each table's share of ``limit`` follows its ids. Its biases are full
    while they fit in it, else get ``bias_share`` of it (``bias_spec``); the
    embedding gets the rest. A ``full`` spec is a
    uniform table: its width is what the rest allows, and then the biases
    take what the table leaves. ``compress_biases`` compresses them even where
    full ones fit (to compare ways of compressing them). None when nothing fits.
    """
    sizes = {name: vocab.input_dim for name, vocab in vocabularies.items()}
    total_ids = sum(sizes.values())
    shares = {name: limit * n // total_ids for name, n in sizes.items()}

    def bias_allowance(name: str) -> int:
        n, share = sizes[name], shares[name]
        if n <= share and not compress_biases:
            return n
        return math.floor(share * bias_share)

    def biases_for(allowed: Mapping[str, int]) -> tuple[dict, dict[str, int]] | None:
        out, params = {}, {}
        for name in sizes:
            vocab = vocabularies[name]
            bias = (
                bias_spec(vocab.input_dim, allowed[name], bias_technique, vocab) if biases else None
            )
            out[name] = bias
            if bias is None:
                params[name] = 0
                continue
            resolved = _resolve({"b": bias}, {"b": vocabularies[name]}, 1)
            if resolved is None:
                return None
            params[name] = resolved["b"]
        return out, params

    if spec["type"] == "full":
        width = min(
            (shares[name] - (bias_allowance(name) if biases else 0)) // sizes[name]
            for name in sizes
        )
        width = min(width, embedding_dim)
        if width < 1:
            width = 1  # the narrowest table, if the biases can yield to it
        rest = {name: shares[name] - sizes[name] * width for name in sizes}
        if min(rest.values()) < 0:
            return None
        made = biases_for({name: min(rest[name], bias_allowance(name)) for name in sizes})
        if made is None:
            return None
        bias_specs, bias_params = made
        embeddings = {name: {"type": "full"} for name in sizes}
        params = {name: sizes[name] * width for name in sizes}
    else:
        made = biases_for({name: bias_allowance(name) for name in sizes})
        if made is None:
            return None
        bias_specs, bias_params = made
        for width in range(embedding_dim, 0, -1):
            allowed = {name: shares[name] - bias_params[name] for name in sizes}
            embeddings = {
                name: _set_knob(spec, sizes[name], width, allowed[name]) for name in sizes
            }
            params = _resolve(embeddings, vocabularies, width)
            if params is not None and all(params[n] <= allowed[n] for n in sizes):
                break
        else:
            return None
    sizes_out = dict(params)
    sizes_out.update({f"{name}_bias": bias_params[name] for name in sizes})
    fitted = Fitted(width, embeddings, bias_specs, sizes_out, limit)
    return fitted if fitted.total <= limit else None


# The rule ``--embedding-budget`` applies: for budgets up to each ratio, the
# technique the extreme-compression benchmark found best there
# (benchmarks/results/extreme.md), at the compressed presets' width.
RULE_WIDTH = 16
RULE: tuple[tuple[float, str, dict[str, Any], str], ...] = (
    (
        32,
        "md",
        {
            "type": "md",
            "blocks": 4,
            "alpha": 0.1,
            "compression": 2,
            "fill_budget": True,
            "projection": "nested",
        },
        "to 32x the biases stay full and MD ties a narrower plain table "
        "(benchmarks/results/quality.md); MD also goes past 1-d rows",
    ),
    (
        REFERENCE_DIM,
        "hash",
        {"type": "hash", "compression": 2},
        "to 64x full biases nearly fill the budget (they alone are a 65x model) and "
        "a small hashed table of the most rated ids takes the rest",
    ),
    (
        math.inf,
        "qr",
        {"type": "qr", "operation": "add", "num_partitions": 2, "compression": 2},
        "past 64x the biases are compressed and take most of the budget: where ids are "
        "rated unequally the most rated keep their own, a QR add table holds the rest; "
        "of the tables beside them QR add did best, where it fits; trained without "
        "the per-id prior",
    ),
)
# How the rule compresses biases (``bias_spec``) where it knows the ratings per
# id; without them (a ratio on the Kubeflow runner) QR add, whose ratio holds on
# a vocabulary of any size, where the head's QR tail could not shrink far enough.
RULE_BIASES = "head"
# Where the rule's technique cannot fit (a small vocabulary), these are tried
# in turn: QR concat in 3 partitions has smaller tables than QR in 2; beside the
# head biases it was the best row on ML-100K at 256x, where 2 partitions do not
# fit, and the only QR row that fits at 1024x on the large sets
# (benchmarks/results/extreme.md).
_RULE_SPECS = {technique: spec for _, technique, spec, _ in RULE}
FALLBACKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("qr", {**_RULE_SPECS["qr"], "operation": "concat", "num_partitions": 3}),
    ("hash", _RULE_SPECS["hash"]),
)
# Nominal vocabularies for a ratio without the data's (its specs are ratios, so
# they follow the real vocabularies; only the width depends on these).
NOMINAL_SIZES = {"user_embedding": 1_000_000, "movie_embedding": 100_000}


@dataclasses.dataclass(frozen=True)
class Choice:
    """What ``choose`` picked: the model settings and why."""

    budget: Budget
    technique: str
    settings: dict[str, Any]  # ModelConfig fields
    limit: int
    params: int
    sizes_known: bool
    why: str

    def lines(self) -> list[str]:
        where = "these vocabularies" if self.sizes_known else "vocabularies read later"
        dim = self.settings["embedding_dim"]
        return [
            f"Embedding budget {self.budget}: {self.technique} tables of width {dim}, "
            f"{_described_biases(self.settings)} ({self.params:,} of {self.limit:,} "
            f"id-indexed parameters on {where})",
            f"  why: {self.why}",
        ]


def _vocabularies(
    sizes: Mapping[str, int], counts: Mapping[str, Sequence[int]] | None
) -> dict[str, Vocabulary]:
    """Vocabularies of ``sizes`` rows: the ids' rating ``counts``, most rated
    first, where known (the head biases need them), else one rating each."""
    out = {}
    for name, n in sizes.items():
        if counts is None:
            out[name] = Vocabulary.of(np.ones(int(n) - 1), 1)
        else:
            rated = np.sort(np.asarray(counts[name], dtype=np.float64))[::-1]
            out[name] = Vocabulary.of(rated, int(n) - len(rated))
    return out


def _described_biases(settings: Mapping[str, Any]) -> str:
    if not settings.get("use_biases", True) or "user_bias" not in settings:
        return "no biases"

    def kind(spec):
        if spec["type"] == "md":
            return "own biases for the most rated ids and QR add for the rest"
        if spec["type"] == "qr":
            return f"QR {spec['operation']} biases"
        return f"{spec['type']} biases"

    users, movies = kind(settings["user_bias"]), kind(settings["movie_bias"])
    return users if users == movies else f"users {users}, movies {movies}"


def _described(spec: Mapping[str, Any]) -> str:
    if spec["type"] == "qr":
        return f"QR {spec['operation']} in {spec['num_partitions']} partitions"
    return str(spec["type"])


def choose(
    budget: Budget,
    sizes: Mapping[str, int] | None = None,
    counts: Mapping[str, Sequence[int]] | None = None,
) -> Choice:
    """The technique and knobs ``RULE`` picks for ``budget``, fitted to tables of
    ``sizes`` ids (``{"user_embedding": n, "movie_embedding": n}``, OOV rows
    included), or to ``NOMINAL_SIZES`` for a ratio when they are unknown.
    ``counts`` (the same keys: ratings per id) lets the biases follow them.

    Raises:
      BudgetError: a size without ``sizes``, or a budget nothing fits.
    """
    if sizes is None and budget.ratio is None:
        raise BudgetError(
            f"a size ({budget}) needs the vocabulary sizes, which this runner does not "
            "read; give a ratio such as 64x"
        )
    known = sizes is not None
    counts = counts if known else None
    sizes = dict(sizes if known else NOMINAL_SIZES)
    limit = budget.params(sizes)
    ratio = budget.ratio_for(sizes)
    if ratio <= 1:
        full = {"type": "full"}
        settings = dict(embedding_dim=REFERENCE_DIM, user_embedding=full, movie_embedding=full)
        settings.update(use_biases=True, user_bias=full, movie_bias=full)
        why = f"{ratio:.2g}x: the budget holds full {REFERENCE_DIM}-d tables and full biases"
        used = reference_params(sizes)
        return Choice(budget, "full", settings, limit, used, known, why)
    index = next(i for i, (up_to, *_rest) in enumerate(RULE) if ratio <= up_to)
    _, technique, spec, why = RULE[index]
    candidates = [(technique, spec, why)] + [
        (name, fallback, f"{_described(spec)} does not fit ({why})")
        for name, fallback in FALLBACKS
        if fallback != spec
    ]
    fitted = None
    biases = RULE_BIASES if counts is not None else "qr"
    vocabularies = _vocabularies(sizes, counts)
    while candidates and fitted is None:
        technique, spec, why = candidates.pop(0)
        fitted = fit(spec, vocabularies, limit, RULE_WIDTH, bias_technique=biases)
    if fitted is None:
        raise BudgetError(f"nothing fits {budget} ({limit:,} parameters) on these tables")
    settings = {
        "embedding_dim": fitted.embedding_dim,
        "user_embedding": fitted.embeddings["user_embedding"],
        "movie_embedding": fitted.embeddings["movie_embedding"],
        "use_biases": all(b is not None for b in fitted.biases.values()),
    }
    if settings["use_biases"]:
        settings["user_bias"] = fitted.biases["user_embedding"]
        settings["movie_bias"] = fitted.biases["movie_embedding"]
        settings.update(training_changes(fitted.biases))
    if counts is None and any(b and b["type"] == "qr" for b in fitted.biases.values()):
        why += "; without the ratings per id, QR add biases, whose ratio holds on any vocabulary"
    even = [
        name.split("_")[0] + "s"
        for name, bias in fitted.biases.items()
        if biases == "head"
        and bias
        and bias["type"] == "qr"
        and rating_spread(vocabularies[name].counts) < HEAD_MIN_SPREAD
    ]
    if even:
        why += (
            f"; the {' and '.join(even)} are rated about equally (spread under "
            f"{HEAD_MIN_SPREAD}): QR add biases over all of them"
        )
    return Choice(budget, technique, settings, limit, fitted.total, known, f"{ratio:,.4g}x: {why}")


def check(report: Mapping[str, Any], budget: Budget) -> tuple[bool, str]:
    """Whether a model's memory report (with its ``"biases"``) keeps ``budget``,
    counted on the vocabularies it was built on; and a line saying so."""
    from trainer.embeddings.memory import id_indexed_total

    total = id_indexed_total(report, REFERENCE_DIM)
    sizes = {name: feature["input_dim"] for name, feature in report["features"].items()}
    limit = budget.params(sizes)
    kept = total["params"] <= limit
    return kept, (
        f"Embedding budget {budget}: {total['params']:,} id-indexed parameters "
        f"({total['compression']:.1f}x smaller than full {REFERENCE_DIM}-d tables and "
        f"full biases), limit {limit:,}: {'kept' if kept else 'EXCEEDED'}"
    )
