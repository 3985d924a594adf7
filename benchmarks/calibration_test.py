"""Fast tests of the calibration's pure helpers (no training)."""

import pytest

from benchmarks import calibration


def test_gaps_are_percent_of_full():
    gaps = calibration.gaps(
        {"baseline": 0.9, "uniform_8x": 0.909, "uniform_16x": 0.918, "uniform_32x": 0.9}
    )
    assert gaps == pytest.approx({"uniform_8x": 1.0, "uniform_16x": 2.0, "uniform_32x": 0.0})


def test_mismatch_is_squared_error_over_shared_gaps():
    reference = {"uniform_8x": 0.7, "uniform_16x": 1.0, "uniform_32x": 1.6}
    assert calibration.mismatch(reference, reference) == 0
    candidate = {"uniform_8x": 1.7, "uniform_16x": 3.0}
    assert calibration.mismatch(candidate, reference) == pytest.approx(1.0 + 4.0)
    with pytest.raises(ValueError):
        calibration.mismatch({}, reference)


def test_markdown_names_the_best_match():
    row = {
        "dataset": "ml-100k",
        "seeds": 2,
        "val_rmse": {"baseline": 0.9, "uniform_8x": 0.91},
        "gap_pct": {"uniform_8x": 1.11},
    }
    payload = {
        "command": "python -m benchmarks.calibration",
        "machine": {"nproc": "2", "cpu": "x", "ram": "1 GiB", "python": "3.10"},
        "wall_seconds": 60.0,
        "sets": [row, dict(row, dataset="synthetic-100k decay=1 rank=32", mismatch=0.5)],
        "best": {"dataset": "synthetic-100k decay=1 rank=32", "mismatch": 0.5},
    }
    text = calibration.markdown(payload)
    assert "| ml-100k | 2 | 0.9000 | 0.9100 |" in text
    assert "+1.11" in text
    assert "Best match: **synthetic-100k decay=1 rank=32**" in text
