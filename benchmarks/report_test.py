"""The quality report's target checks, on hand-made rows (no training)."""

from benchmarks import report


def _row(config, technique, budget, rmse, std=0.001, seeds=3, dataset="synthetic-large"):
    return {
        "dataset": dataset,
        "config": config,
        "technique": technique,
        "budget": budget,
        "val_rmse": rmse,
        "val_rmse_std": std,
        "seeds": seeds,
    }


def test_difference_noise_is_two_standard_errors():
    a, b = _row("a", "md", 16, 0.9, std=0.003), _row("b", "uniform", 16, 0.9, std=0.004)
    assert abs(report.difference_noise(a, b) - 2 * (0.005**2 / 3) ** 0.5) < 1e-12


def test_checks_say_whether_a_difference_exceeds_seed_noise():
    rows = [
        _row("baseline", "full", None, 0.90),
        _row("uniform_16x", "uniform", 16, 0.910),
        _row("md_16x", "md", 16, 0.9095),  # 0.0005 better: inside 2 SE (0.0016)
        _row("uniform_32x", "uniform", 32, 0.920),
        _row("md_qr_32x", "qr+md", 32, 0.915),  # 0.005 better: beyond it
    ]
    lines = report.target_checks(rows)
    line_16 = next(line for line in lines if " 16x:" in line)
    assert "**no worse**" in line_16 and "within seed noise" in line_16
    assert "within 1%: **not met**" in line_16  # 0.9095 / 0.90 - 1 = +1.06%
    qr_line = next(line for line in lines if "a QR configuration" in line)
    assert "**met**" in qr_line and "`md_qr_32x`" in qr_line and "beyond seed noise" in qr_line


def test_a_qr_row_that_loses_everywhere_is_not_a_win():
    rows = [
        _row("uniform_16x", "uniform", 16, 0.910),
        _row("qr_16x", "qr", 16, 0.920),
    ]
    qr_line = next(line for line in report.target_checks(rows) if "a QR configuration" in line)
    assert qr_line.endswith("**not met**")


def test_rerender_rebuilds_the_markdown_from_the_json(tmp_path):
    rows = [
        {**_row("baseline", "full", None, 0.9, dataset="ml-100k"), "embedding_params": 10},
        {**_row("uniform_16x", "uniform", 16, 0.91, dataset="ml-100k"), "embedding_params": 1},
    ]
    for row in rows:
        row.update(bias_params=0, compression=1.0, val_mae=0.7, best_epoch=3, seconds=1.0)
    machine = {"nproc": "2", "cpu": "test", "ram": "1 GiB", "python": "3.10"}
    report.write_quality(tmp_path, rows, "cmd", machine, {"ml-100k": "desc"}, {}, 60.0)
    (tmp_path / "quality.md").unlink()
    report.rerender_quality(tmp_path)
    text = (tmp_path / "quality.md").read_text()
    assert "uniform_16x" in text and "Command: `cmd`" in text
