"""Tests for trainer/embeddings/memory.py."""

import json

import numpy as np
import pytest

from trainer.embeddings import build_embedding
from trainer.embeddings import embedding_memory_report
from trainer.embeddings.memory import id_indexed_total


def three_features():
    """A full, a QR and an MD (with a QR tail) table over the same 400 ids."""
    counts = sorted(np.random.default_rng(0).zipf(1.4, 400).tolist(), reverse=True)
    md = {"type": "md", "blocks": 3, "alpha": 0.5, "tail_qr": {"num_buckets": 20}}
    return {
        "user": build_embedding({"type": "full"}, counts, 1, 8, "user_emb"),
        "item": build_embedding({"type": "qr", "num_partitions": 3}, counts, 1, 8, "item_emb"),
        "genre": build_embedding(md, counts, 1, 8, "genre_emb"),
    }


def test_memory_report():
    layers = three_features()
    for layer in layers.values():
        layer.build((None,))
    report = embedding_memory_report(layers, 8)
    json.dumps(report)  # must be JSON-serialisable
    for name, layer in layers.items():
        entry = report["features"][name]
        assert entry["input_dim"] == 401
        assert entry["params"] == layer.count_params()
        assert entry["params"] == sum(t["params"] for t in entry["tables"])
        assert all(
            t["params"] == t["rows"] * t["dim"] and t["bytes"] == 4 * t["params"]
            for t in entry["tables"]
        )
        assert entry["bytes"] == 4 * entry["params"]
        assert entry["full_params"] == 401 * 8
        assert entry["ratio_to_full"] == pytest.approx(entry["params"] / (401 * 8))
        assert "adaptations" not in entry
    assert report["features"]["user"]["tables"] == [
        {"name": "embeddings", "rows": 401, "dim": 8, "params": 3208, "bytes": 12832}
    ]
    assert report["features"]["user"]["ratio_to_full"] == 1.0
    total = report["total"]
    assert total["params"] == sum(layer.count_params() for layer in layers.values())
    assert total["full_params"] == 3 * 401 * 8
    assert total["compression"] == pytest.approx(total["full_params"] / total["params"])


def test_a_table_the_vocabulary_changed_lists_its_adaptations():
    layer = build_embedding({"type": "md", "blocks": 3}, [7], 1, 4, "f")
    entry = embedding_memory_report({"f": layer}, 4)["features"]["f"]
    assert entry["adaptations"] == ["3 MD blocks asked for, but the vocabulary has 1 id: 1 block"]


def test_the_id_indexed_total_adds_the_biases_and_counts_against_full_biases():
    layers = three_features()
    for layer in layers.values():
        layer.build((None,))
    report = embedding_memory_report(layers, 8)
    tables = report["total"]["params"]
    alone = id_indexed_total(report, reference_dim=8)
    assert alone["params"] == tables and alone["full_params"] == 3 * 401 * 9
    hashed = build_embedding({"type": "hash", "num_buckets": 10}, [5] * 400, 1, 1, "b")
    hashed.build((None,))
    report["biases"] = embedding_memory_report({"user": hashed}, 1)
    total = id_indexed_total(report, reference_dim=8)
    assert total["params"] == tables + 10
    assert total["bytes"] == 4 * total["params"]
    assert total["compression"] == pytest.approx(3 * 401 * 9 / (tables + 10))
