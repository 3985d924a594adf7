"""The renderer shows what the JSON holds, and the differences between its rows."""

import json

from benchmarks import render


def _row(config, rmse, std=0.003, seeds=3, **extra):
    return {
        "dataset": "ml-100k",
        "config": config,
        "val_rmse": rmse,
        "val_rmse_std": std,
        "seeds": seeds,
        "model": {"l2": 0.1},
        **extra,
    }


def _table(text, title):
    """The lines of the table under the heading ``title``."""
    lines = text.splitlines()
    start = lines.index(title) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_rows_are_tabled_per_data_set_with_their_differences():
    payload = {
        "command": "python -m benchmarks.quality",
        "machine": {"cpu_model": "Test CPU", "nproc": 2},
        "rows": [
            _row("baseline", 0.9),
            _row("uniform_16x", 0.91, budget=16),
            _row("md_16x", 0.9095, std=0.004, budget=16, versus="uniform_16x"),
            {**_row("baseline", 0.8), "dataset": "synthetic-1m"},
        ],
    }
    text = render.render(payload, "quality")
    assert "| command | python -m benchmarks.quality |" in text
    assert "| cpu_model | Test CPU |" in text
    table = _table(text, "## ml-100k")
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:3] == ["config", "val_rmse", "val_rmse_std"]
    assert header[-2:] == ["vs_full_%", "vs"]  # derived columns last
    assert "model" not in header and "dataset" not in header
    md = next(line for line in table if line.startswith("| md_16x "))
    noise = 2 * ((0.004**2 + 0.003**2) / 3) ** 0.5
    assert f"uniform_16x: -0.0005 ± {noise:.4f}" in md
    assert "| 1.06 |" in md  # 0.9095 / 0.9 - 1, in percent
    assert len(_table(text, "## synthetic-1m")) == 3


def test_results_without_versus_compare_with_the_uniform_row_of_their_budget():
    rows = render.compare([_row("uniform_8x", 0.90, budget=8), _row("qr_8x", 0.92, budget=8)])
    assert rows[1]["vs"].startswith("uniform_8x: +0.0200")
    assert "vs" not in rows[0]


def test_factors_add_is_trained_minus_zeroed():
    [row] = render.compare([{"rmse_trained": 0.93, "rmse_tables_zeroed": 0.95}])
    assert row["factors_add"] == -0.02


def test_few_wide_records_are_transposed_and_nested_lists_get_tables():
    runs = {
        name: {
            "seconds": s,
            "components": {"Trainer": {"seconds": t}},
            **{f"field_{i}": i for i in range(12)},
            "epochs": [{"steps": 10, "ms_per_step": 1.5}],
        }
        for name, s, t in (("builtin", 40.0, 11.7), ("ml-100k", 39.4, 11.4))
    }
    text = render.render({"pipeline": {"runs": runs}}, "speed")
    assert "| field | builtin | ml-100k |" in text
    assert "| components.Trainer.seconds | 11.7 | 11.4 |" in text
    assert "`epochs` of ml-100k:" in text and "| 10 | 1.5 |" in text


def test_cells_keep_the_recorded_precision():
    assert render.cell(1.0001) == "1.0001"
    assert render.cell(1005.8) == "1,005.8"
    assert render.cell(1234567.0) == "1,234,567"
    assert render.cell([6, 5]) == "6 / 5"
    assert render.cell(None) == "–" and render.cell("a|b") == "a\\|b"


def test_render_all_writes_one_markdown_per_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"x": 1.5}]))
    (tmp_path / "b.json").write_text(json.dumps({"rows": [_row("baseline", 0.9)]}))
    written = render.render_all(tmp_path)
    assert [p.name for p in written] == ["a.md", "b.md"]
    assert "| 1.5 |" in (tmp_path / "a.md").read_text()


def test_the_chart_plots_every_technique_by_its_id_indexed_parameters(tmp_path):
    extreme = {
        "rows": [
            _row("baseline", 0.9, technique="full", id_params=1000),
            _row("hash_64x", 0.95, technique="hash", id_params=20, budget=64),
            _row("hash_128x", 0.97, technique="hash", id_params=10, budget=128),
            _row("qr_mult2_64x", 0.94, technique="qr", id_params=19, budget=64),
        ]
    }
    legacy = {
        "rows": [
            _row("seed_baseline", 1.0, technique="full", embedding_params=900, bias_params=1),
            _row("uniform_16x", 0.92, technique="uniform", embedding_params=60, bias_params=41),
            {**_row("uniform_16x", 0.9, technique="uniform"), "dataset": "elsewhere"},
        ]
    }
    points = render.chart_points([extreme, legacy])
    assert list(points) == ["ml-100k"]
    assert points["ml-100k"]["hash"] == [(10, 0.97, 0.003), (20, 0.95, 0.003)]
    assert points["ml-100k"]["qr_mult2"] == [(19, 0.94, 0.003)]
    assert points["ml-100k"]["uniform"] == [(100, 0.92, 0.003)]  # the global bias left out
    assert points["ml-100k"]["full"] == [(1000, 0.9, 0.003)]  # not the seed's model
    (tmp_path / "extreme.json").write_text(json.dumps(extreme))
    (tmp_path / "quality.json").write_text(json.dumps(legacy))
    out = render.chart(tmp_path)
    assert out == tmp_path / "budgets.png" and out.read_bytes()[:4] == b"\x89PNG"
