"""What every technique's spec shares: the base classes, errors and value checks.

A spec is a dataclass per technique (``FullSpec``, ``QRSpec``, ``MDSpec``):
its fields are the JSON keys a user writes, its docstring the reference for
them. It is checked on its own (``validate``: types, ranges, keys that
exclude each other, widths against the model's), then resolved against a
vocabulary (``resolve``) into a ``Table``: the sizes of the layer it
becomes, before any weight exists. Nothing here imports Keras, so that the
runners check every setting before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import numpy as np

_log = logging.getLogger("trainer.embeddings")


class SpecError(ValueError):
    """A spec that is wrong whatever the data: an unknown type or key, a value
    of the wrong type or out of range, keys that exclude each other."""


class SpecVocabularyError(ValueError):
    """A spec the vocabulary cannot honour (``block_sizes`` that do not sum to
    it, too few QR buckets to tell its ids apart, a budget too small for its
    rows). Raised when tables are resolved, so in the Trainer; the message is
    one line that starts with the table's name (``user_embedding: ...``)."""


def shown(value: Any) -> str:
    """A value as the user wrote it in JSON."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def rows_text(rows: int, vocab_size: int | None = None) -> str:
    if vocab_size is None or vocab_size == rows:
        return plural(rows, "row")
    return f"{rows} rows ({plural(vocab_size, 'id')} + {rows - vocab_size} OOV)"


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The ids a table serves: ``counts`` of the vocabulary's ids, most frequent
    first (id 0 is the most popular), then ``num_oov`` OOV buckets, which count
    as frequency 0."""

    counts: np.ndarray
    num_oov: int

    @classmethod
    def of(cls, counts: Sequence[float], num_oov: int) -> Vocabulary:
        return cls(np.asarray(counts, dtype=np.float64).reshape(-1), int(num_oov))

    @property
    def size(self) -> int:
        return len(self.counts)

    @property
    def input_dim(self) -> int:
        return self.size + self.num_oov


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table:
    """A resolved table: what its layer is built from, and ``notes`` saying
    where the vocabulary made it differ from its spec."""

    notes: tuple[str, ...] = ()

    # The widest coordinate any row fills when narrower rows are zero-padded
    # to the model's width; None when every row fills every coordinate.
    padded_width: ClassVar[int | None] = None

    def layer(self, name: str, initializer=None, regularizer=None):
        """The Keras layer (imports Keras); ``initializer`` None keeps the layer's own."""
        raise NotImplementedError

    def build(self, name: str, initializer=None, regularizer=None):
        """``layer`` with ``adaptations`` set to the notes, each logged as a warning."""
        for note in self.notes:
            _log.warning("%s: %s", name, note)
        layer = self.layer(name, initializer, regularizer)
        layer.adaptations = self.notes
        return layer


@dataclasses.dataclass
class Spec:
    """One technique's settings. Subclasses set ``type`` and declare their
    JSON keys as fields; a field whose default is None also takes null."""

    type: ClassVar[str]
    # The module of the technique's own Keras layer, if it has one.
    layer_module: ClassVar[str | None] = None

    @classmethod
    def from_json(
        cls,
        options: Mapping[str, Any],
        output_dim: int | None = None,
        where: str | None = None,
        exclude: Sequence[str] = (),
    ) -> Spec:
        """The spec of JSON ``options`` (without "type"), checked (``validate``).

        ``exclude`` names fields this use of the spec does not take; ``where``
        says where the keys stand, for the message about an unknown one.
        """
        known = [f.name for f in dataclasses.fields(cls) if f.name not in exclude]
        unknown = [key for key in options if key not in known]
        if unknown:
            keys = ", ".join(repr(k) for k in unknown)
            raise SpecError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {keys} "
                f"{where or f'for type {cls.type}'} (known: {', '.join(known) or 'none'})"
            )
        spec = cls(**options)
        spec.validate(output_dim)
        return spec

    def validate(self, output_dim: int | None = None) -> None:
        """Raises ``SpecError`` for a value that is wrong whatever the data;
        ``output_dim`` (the model's width), when given, bounds the widths."""

    def resolve(self, vocab: Vocabulary, output_dim: int, notes: list[str]) -> Table:
        """The table for ``vocab``; what the vocabulary changes is appended to
        ``notes``, what it cannot meet raises ``ValueError``."""
        raise NotImplementedError

    def capped(self, width: int) -> Spec | None:
        """This spec with no padded row wider than ``width``, or None when it
        cannot narrow (see ``Table.padded_width``)."""
        return None

    # Value checks: one-line messages naming the key and what it allows.

    def _optional(self, key: str) -> bool:
        return next(f for f in dataclasses.fields(self) if f.name == key).default is None

    def _fail(self, key: str, allowed: str):
        null = " (or null)" if self._optional(key) else ""
        raise SpecError(f"{key} must be {allowed}{null}, got {shown(getattr(self, key))}")

    def _given(self, key: str) -> bool:
        return not (getattr(self, key) is None and self._optional(key))

    def check_int(self, key: str, low: int, high: int | None = None) -> None:
        value = getattr(self, key)
        if self._given(key) and (
            not is_int(value) or value < low or (high is not None and value > high)
        ):
            self._fail(
                key, f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            )

    def check_number(self, key: str, above: float, inclusive: bool = False) -> None:
        value = getattr(self, key)
        if self._given(key) and (
            not is_number(value) or value < above or (value == above and not inclusive)
        ):
            self._fail(key, f"a number {'>=' if inclusive else '>'} {above:g}")

    def check_bool(self, key: str) -> None:
        if not isinstance(getattr(self, key), bool):
            self._fail(key, "true or false")

    def check_choice(self, key: str, choices: Sequence[str]) -> None:
        if getattr(self, key) not in choices:
            self._fail(key, "one of " + ", ".join(shown(c) for c in choices))

    def check_list(self, key: str, is_item: Callable[[Any], bool], item: str) -> None:
        value = getattr(self, key)
        if value is not None and (
            not isinstance(value, (list, tuple)) or not value or not all(map(is_item, value))
        ):
            self._fail(key, f"a non-empty list of {item}")

    def check_exclusive(self, *keys: str) -> None:
        given = [k for k in keys if getattr(self, k) is not None]
        if len(given) > 1:
            raise SpecError(
                f"{' and '.join(given)} are mutually exclusive: set one of {', '.join(keys)}"
            )
