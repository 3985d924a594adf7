"""The memory report: every table of every feature, its parameters and fp32
bytes, and the ratio to a full ``input_dim x output_dim`` table; and the
id-indexed total (``id_indexed_total``): tables and per-id biases against full
64-d tables plus full biases, the measure a memory budget counts in."""

from collections.abc import Mapping
from typing import Any

BYTES_PER_PARAM = 4  # fp32


def layer_tables(layer) -> list[dict[str, Any]]:
    """``[{"name", "rows", "dim"}, ...]`` for any layer a spec builds."""
    import keras

    if hasattr(layer, "tables"):
        return list(layer.tables())
    if isinstance(layer, keras.layers.Embedding):
        return [{"name": "embeddings", "rows": int(layer.input_dim), "dim": int(layer.output_dim)}]
    raise TypeError(f"no memory report for layer type {type(layer).__name__}")


def _sizes(params: int, full: int) -> dict[str, Any]:
    return {
        "params": params,
        "bytes": params * BYTES_PER_PARAM,
        "full_params": full,
        "full_bytes": full * BYTES_PER_PARAM,
        "ratio_to_full": params / full if full else 0.0,
        "compression": full / params if params else 0.0,
    }


def embedding_memory_report(layers: Mapping[str, Any], output_dim: int) -> dict[str, Any]:
    """Parameters and fp32 bytes per feature and table, vs full tables.

    Returns a JSON-serialisable dict::

        {"features": {feature: {"type", "input_dim", "tables": [{"name",
            "rows", "dim", "params", "bytes"}], "params", "bytes",
            "full_params", "full_bytes", "ratio_to_full", "compression"}},
         "total": {"params", "bytes", "full_params", "full_bytes",
                   "ratio_to_full", "compression"}}

    ``ratio_to_full`` is params / (input_dim * output_dim); ``compression`` is
    its inverse. A feature whose table the vocabulary made differ from its
    spec also has ``"adaptations"``: the one-line notes saying what changed.
    """
    features = {}
    total_params = total_full = 0
    for feature, layer in layers.items():
        tables = []
        for table in layer_tables(layer):
            rows, dim = int(table["rows"]), int(table["dim"])
            params = rows * dim
            tables.append(
                dict(table, rows=rows, dim=dim, params=params, bytes=params * BYTES_PER_PARAM)
            )
        params = sum(t["params"] for t in tables)
        input_dim = int(layer.input_dim)
        full = input_dim * int(output_dim)
        features[feature] = {
            "type": type(layer).__name__,
            "input_dim": input_dim,
            "tables": tables,
            **_sizes(params, full),
        }
        if getattr(layer, "adaptations", ()):
            features[feature]["adaptations"] = list(layer.adaptations)
        total_params += params
        total_full += full
    return {"features": features, "total": _sizes(total_params, total_full)}


def id_indexed_total(report: Mapping[str, Any], reference_dim: int = 64) -> dict[str, Any]:
    """Every id-indexed parameter of a memory report, its tables plus its per-id
    biases (the report's ``"biases"`` section, when it has one), against full
    ``reference_dim``-wide tables plus full biases over the same ids.

    The reference always holds full biases, so a model without them (or with
    them compressed) is credited for their memory, as a budget counts it.
    Returns ``{"params", "bytes", "full_params", "full_bytes", "ratio_to_full",
    "compression"}``.
    """
    params = int(report["total"]["params"])
    biases = report.get("biases")
    if biases:
        params += int(biases["total"]["params"])
    ids = sum(int(feature["input_dim"]) for feature in report["features"].values())
    return _sizes(params, ids * (int(reference_dim) + 1))
