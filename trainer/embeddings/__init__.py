"""Embedding tables: a JSON spec per id feature, a module per technique.

==========  ==============  ====================  =============================
type        spec and sizes  layer                 main knobs
==========  ==============  ====================  =============================
``full``    ``full.py``     keras Embedding       (none)
``qr``      ``qr.py``       ``qr_layer.py``       num_buckets or compression,
                                                  num_partitions, operation
``md``      ``md.py``       ``md_layer.py``       blocks, alpha, base_dim or
                                                  param_budget or compression,
                                                  projection, tail_qr
``hash``    ``hashing.py``  ``hash_layer.py``     num_buckets or compression
==========  ==============  ====================  =============================

A technique's module holds its spec (a dataclass whose docstring is the
reference for its JSON keys), the solvers that size it against a vocabulary,
and the ``Table`` it resolves into; a technique with a Keras layer of its own
keeps it beside, in ``<type>_layer.py``, imported only when a layer is built
so that checking a spec does not load TensorFlow. Adding a technique is a
module with a ``Spec`` subclass and a line in ``TECHNIQUES``.

Ids come from a TF-Transform vocabulary sorted by frequency (id 0 = most
popular) with ``num_oov`` buckets at the end, so ``input_dim = len(counts) +
num_oov``. QR and MD layers return ``[batch, output_dim]`` for ids of shape
``[batch]`` or ``[batch, 1]``; the plain ``keras.layers.Embedding`` keeps
the input's rank, so feed it ``[batch]`` ids to get the same shape from every
type.

``parse`` checks a spec without data (``SpecError``, one line naming the key;
``ModelConfig`` calls it, so the runners refuse a bad spec before any
component runs). ``build_tables`` resolves the specs of a model's tables
against their vocabularies, together: a pair of tables whose rows are
zero-padded meet only in the narrower one's widest coordinates, so the wider
is resolved again capped at that width and spends its budget below it. What
a small vocabulary changes is a note (logged, and the layer's
``adaptations``); what it cannot meet raises ``SpecVocabularyError``.
"""

import dataclasses
import importlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from trainer.embeddings.full import FullSpec
from trainer.embeddings.full import PlainTable
from trainer.embeddings.hashing import HashSpec
from trainer.embeddings.md import MDSpec
from trainer.embeddings.memory import embedding_memory_report
from trainer.embeddings.memory import id_indexed_total
from trainer.embeddings.memory import layer_tables
from trainer.embeddings.qr import QRSpec
from trainer.embeddings.spec import Spec
from trainer.embeddings.spec import SpecError
from trainer.embeddings.spec import SpecVocabularyError
from trainer.embeddings.spec import Table
from trainer.embeddings.spec import Vocabulary
from trainer.embeddings.spec import rows_text
from trainer.embeddings.spec import shown

TECHNIQUES = {spec.type: spec for spec in (FullSpec, QRSpec, MDSpec, HashSpec)}

__all__ = [
    "TECHNIQUES",
    "FullSpec",
    "HashSpec",
    "MDSpec",
    "QRSpec",
    "Spec",
    "SpecError",
    "SpecVocabularyError",
    "Table",
    "Vocabulary",
    "build_embedding",
    "build_tables",
    "embedding_memory_report",
    "id_indexed_total",
    "layer_tables",
    "parse",
    "register_layers",
]


def parse(spec: Mapping[str, Any] | Spec, output_dim: int | None = None) -> Spec:
    """The typed spec of a JSON spec, every key checked (``Spec.validate``);
    ``output_dim`` (the model's width), when given, bounds the widths.

    Raises:
      SpecError: with a one-line message naming the key and what it allows.
    """
    if isinstance(spec, Spec):
        spec.validate(output_dim)
        return spec
    if not isinstance(spec, Mapping):
        raise SpecError(f'expected a JSON object with a "type", got {shown(spec)}')
    allowed = ", ".join(sorted(TECHNIQUES))
    if "type" not in spec:
        raise SpecError(f'missing "type"; allowed: {allowed}')
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in TECHNIQUES:
        raise SpecError(f"unknown embedding type {shown(kind)}; allowed: {allowed}")
    options = {key: value for key, value in spec.items() if key != "type"}
    return TECHNIQUES[kind].from_json(options, output_dim)


def _resolve(spec: Spec, vocab: Vocabulary, output_dim: int, name: str) -> Table:
    notes: list[str] = []
    try:
        if vocab.input_dim < 1:
            raise SpecVocabularyError("empty vocabulary and no OOV buckets")
        if vocab.size == 0 and not isinstance(spec, FullSpec):
            notes.append(f"the vocabulary is empty: a plain table of {rows_text(vocab.input_dim)}")
            table = PlainTable(vocab.input_dim, output_dim)
        else:
            table = spec.resolve(vocab, output_dim, notes)
    except ValueError as error:  # what the technique cannot do with these sizes
        raise SpecVocabularyError(f"{name}: {error}") from error
    return dataclasses.replace(table, notes=tuple(notes))


def build_tables(
    specs: Mapping[str, Mapping[str, Any] | Spec],
    vocabularies: Mapping[str, Vocabulary],
    output_dim: int,
) -> dict[str, Table]:
    """The tables of ``specs`` (keyed by table name) on their vocabularies.

    When every table zero-pads its narrow rows (``Table.padded_width``), a
    pair scores over the coordinates both fill: each table wider than the
    narrowest is resolved again from its ``Spec.capped`` spec, so no budget
    goes to coordinates that never meet a non-zero one.

    Raises:
      SpecError, SpecVocabularyError: one line starting with the table's name.
    """
    parsed = {}
    for name, spec in specs.items():
        try:
            parsed[name] = parse(spec, int(output_dim))
        except SpecError as error:
            raise SpecError(f"{name}: {error}") from None
    tables = {
        name: _resolve(spec, vocabularies[name], int(output_dim), name)
        for name, spec in parsed.items()
    }
    widths = [table.padded_width for table in tables.values()]
    if None not in widths:
        shared = min(widths)
        for name, table in tables.items():
            capped = parsed[name].capped(shared) if table.padded_width > shared else None
            if capped is not None:
                tables[name] = _resolve(capped, vocabularies[name], int(output_dim), name)
    return tables


def build_embedding(
    spec: Mapping[str, Any] | Spec,
    vocab_counts: Sequence[float],
    num_oov: int,
    output_dim: int,
    name: str,
    regularizer=None,
    initializer=None,
):
    """The Keras layer of one table (``build_tables`` of one, then ``Table.build``).

    Args:
      spec: a JSON spec (``{"type": ...}``) or a ``Spec``.
      vocab_counts: frequency of each in-vocabulary id, sorted descending.
      num_oov: number of OOV buckets after the vocabulary.
      output_dim: embedding width returned for every id.
      name: layer name, also the start of every error message and note.
      regularizer: optional Keras regularizer for every table.
      initializer: table initializer; None keeps each layer's own default
        ("uniform" for plain and MD tables, QR's variance-matched uniform).
    """
    vocab = Vocabulary.of(vocab_counts, num_oov)
    table = build_tables({name: spec}, {name: vocab}, output_dim)[name]
    return table.build(name, initializer, regularizer)


def register_layers() -> None:
    """Imports every technique's layer module (``Spec.layer_module``), so that
    ``keras.models.load_model`` finds the layers by their registered names
    (``memrec>QREmbedding``, ...); ``trainer.model`` does on import."""
    for spec in TECHNIQUES.values():
        if spec.layer_module is not None:
            importlib.import_module(spec.layer_module)
