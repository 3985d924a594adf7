"""The quality command's rows, groups and a tiny end-to-end run of each kind of group."""

import json

import numpy as np
import pytest

from benchmarks import ablation
from benchmarks import datasets
from benchmarks import quality
from benchmarks import training
from components import synthetic
from trainer import model as model_lib

# Zipf-like popularity: the alpha rule gives the blocks different widths.
USERS = [int(20000 / (i + 1)) + 1 for i in range(300)]
MOVIES = [int(20000 / (i + 1)) + 1 for i in range(500)]


def _tables(config):
    return model_lib.id_embeddings(config, USERS, MOVIES)


def _entry(config):
    return next(e for e in quality.entries() if e.config == config)


def test_compressed_rows_are_compared_with_the_uniform_table_of_their_budget():
    rows = quality.entries()
    assert [e.config for e in rows[:3]] == ["seed_baseline", "seed_qr_md", "baseline"]
    for entry in rows[3:]:
        expected = None if entry.technique == "uniform" else f"uniform_{entry.budget}x"
        assert entry.versus == expected, entry.config
    assert _entry("uniform_8x").model.embedding_dim == 8


def test_md_rows_report_their_block_dims_and_one_width_counts_as_uniform():
    entry = _entry("md_16x")
    dims = quality.block_dims(_tables(entry.model))
    assert set(dims) == {"user_id", "movie_id"} and all(len(d) == 4 for d in dims.values())
    assert quality.block_dims(_tables(_entry("uniform_16x").model)) == {}
    assert quality.built_technique("md", _tables(entry.model)) == "md"
    one_width = entry.model.replace(
        user_embedding={"type": "md", "blocks": 4, "dims": [4, 4, 4, 4]},
        movie_embedding={"type": "md", "blocks": 2, "dims": [4, 4]},
    )
    assert quality.built_technique("md", _tables(one_width)) == "uniform"
    with_tail = one_width.replace(
        movie_embedding={"type": "md", "blocks": 2, "dims": [4, 4], "tail_qr": {}}
    )
    assert quality.built_technique("md", _tables(with_tail)) == "md"


def test_at_budget_scales_every_compression_of_a_preset():
    assert _entry("md_qr_32x").model.user_embedding["compression"] == 32 * 16 / 64
    spec = {"compression": 4.0, "tail_qr": {"operation": "mult", "compression": 4.0}}
    assert quality.scale_compression(spec, 8.0) == {
        "compression": 8.0,
        "tail_qr": {"operation": "mult", "compression": 8.0},
    }
    assert spec["compression"] == 4.0  # the preset's own spec is left alone


class _Data:
    """The vocabularies of a data set, all ``extreme_entries`` reads."""

    name = "zipf"
    user_counts = USERS
    movie_counts = MOVIES


def test_at_budget_counts_every_id_indexed_parameter():
    preset = quality.model_config.preset("qr_16x")
    ids = len(USERS) + len(MOVIES) + 2
    hashed = {"type": "hash", "compression": 2}
    for budget in (8, 16, 64, 256):
        config = quality.at_budget(preset, budget, USERS, MOVIES, hashed)
        assert quality.id_params(config, USERS, MOVIES) <= ids * 65 / budget
    # Past 64x the biases are compressed; to 64x they stay full.
    at_64x = quality.at_budget(preset, 64, USERS, MOVIES, hashed)
    at_128x = quality.at_budget(preset, 128, USERS, MOVIES)
    assert at_64x.user_bias == {"type": "full"} and at_128x.user_bias["type"] != "full"
    # With compressed biases the per-id prior is off; with full ones it stays.
    assert at_64x.l2_per_id == preset.l2_per_id > 0 and at_128x.l2_per_id == 0
    # The legacy accounting (issue #4) counts the embeddings alone.
    assert quality.at_embedding_budget(preset, 32).user_embedding["compression"] == 8
    assert quality.at_budget(quality.model_config.preset("md_16x"), 64, USERS, MOVIES) is None


def test_extreme_rows_keep_their_budget_and_compare_with_hashing():
    rows = quality.extreme_entries(_Data)
    assert [e.config for e in rows[:2]] == ["baseline", "biases_only"]
    ids = len(USERS) + len(MOVIES) + 2
    fitted = [e for e in rows[2:] if e.model is not None]
    assert {e.budget for e in fitted} == set(quality.EXTREME_BUDGETS)
    for entry in fitted:
        assert quality.id_params(entry.model, USERS, MOVIES) <= ids * 65 / entry.budget
        own_biases = entry.config.rsplit("_", 1)[0] in quality.EXTREME_WITH_BIASES
        expected = f"hash_all_{entry.budget}x" if own_biases else f"hash_{entry.budget}x"
        assert entry.versus == (None if entry.technique == "hash" else expected), entry.config
    # The hashing trick hashes the compressed biases too; the head rows give the
    # most rated ids their own; neither repeats a row where the biases are full.
    by_name = {e.config: e.model for e in fitted}
    assert by_name["hash_all_128x"].user_bias["type"] == "hash"
    assert by_name["hash_128x"].user_bias["type"] == "qr"
    head = by_name["qr_add2_head_128x"].user_bias
    assert head["type"] == "md" and head["tail_qr"]["operation"] == "add"
    at_64x = [e.config for e in rows if e.budget == 64]
    assert at_64x and not any(n.rsplit("_", 1)[0] in quality.EXTREME_WITH_BIASES for n in at_64x)
    # One dim per id is as narrow as a plain table gets: it fits 64x, not 128x.
    names = {e.config for e in fitted}
    assert "uniform_64x" in names and "uniform_128x" not in names
    assert "hash_1024x" in names


def test_bias_rows_share_their_tables_and_budget():
    rows = quality.bias_entries(_Data)
    assert [e.config for e in rows] == [
        "biases_full",
        "no_biases",
        "biases_qr",
        "biases_hash",
        "biases_head",
        "biases_qr_share75",
        "biases_hash_share75",
    ]
    tables = {(e.model.user_embedding["compression"], e.model.embedding_dim) for e in rows[:5]}
    assert len(tables) == 1
    ids = len(USERS) + len(MOVIES) + 2
    for entry in rows[1:]:
        assert quality.id_params(entry.model, USERS, MOVIES) <= ids * 65 / 64


def test_ablation_ladder_compares_with_the_row_before_the_rest_with_their_reference():
    rows = ablation.entries()
    groups = {}
    for entry in rows:
        groups.setdefault(entry.group, []).append(entry)
    assert list(groups) == ["full ladder", "full, one change", "16x, one change"]
    ladder = groups["full ladder"]
    assert [e.versus for e in ladder[1:]] == [e.config for e in ladder[:-1]]
    assert ladder[-1].model.batch_size == 512 and ladder[-1].model.use_biases
    for name in ("full, one change", "16x, one change"):
        reference, *others = groups[name]
        assert reference.versus is None and {e.versus for e in others} == {reference.config}
    # Row names are unique within a group, so a comparison finds its row.
    assert all(len({e.config for e in g}) == len(g) for g in groups.values())


def test_frequency_ranks_index_ids_as_transform_does():
    ids = np.array(["b", "a", "b", "c", "a", "b", "d"])
    indices, counts = datasets.frequency_ranks(ids, np.arange(6))  # "d" only in eval
    assert counts == [3, 2, 1]
    assert indices.tolist() == [0, 1, 0, 2, 1, 0, 3]


@pytest.fixture
def tiny(monkeypatch):
    """A small generated data set, trained 3 epochs."""
    make = lambda: synthetic.generate_ratings(50, 60, 2000, min_ratings_per_user=5)  # noqa: E731
    monkeypatch.setitem(datasets.DATASETS, "tiny", make)
    monkeypatch.setitem(quality.RECIPES, "tiny", quality.Recipe(max_epochs=3))
    return "tiny"


def test_a_quality_run_writes_its_rows_and_machine(tiny, tmp_path):
    argv = ["--datasets", tiny, "--seeds", "2", "--configs", "uniform_16x,md_16x"]
    assert quality.main(argv + ["--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "quality.json").read_text())
    assert payload["machine"]["nproc"] >= 1 and "git_head" in payload["machine"]
    uniform, md = payload["rows"]
    assert (uniform["config"], md["config"], md["versus"]) == (
        "uniform_16x",
        "md_16x",
        "uniform_16x",
    )
    assert uniform["seeds"] == 2 and 1 <= uniform["best_epoch"] <= 3
    assert 0.5 < uniform["val_rmse"] < 2 and uniform["model"]["epochs"] == 3
    # 4-d tables and full biases: 5 of the reference's 65 parameters per id.
    assert uniform["compression"] == pytest.approx(65 / 5, rel=0.01)


def test_a_row_updates_run_trains_each_row_each_way_against_dense_adam(tiny, tmp_path):
    argv = ["--group", "row_updates", "--datasets", tiny, "--seeds", "1"]
    argv += ["--configs", "md_16x_dense,md_16x_lazy,md_16x_catch_up", "--out", str(tmp_path)]
    assert quality.main(argv) == 0
    rows = json.loads((tmp_path / "row_updates.json").read_text())["rows"]
    assert [r["model"]["row_updates"] for r in rows] == ["dense", "lazy", "catch_up"]
    assert [r.get("versus") for r in rows] == [None, "md_16x_dense", "md_16x_dense"]
    assert {r["model"]["name"] for r in rows} == {"md_16x"}


def test_a_ranking_run_scores_each_row_by_ndcg_and_recall(tiny, tmp_path):
    argv = ["--group", "ranking", "--datasets", tiny, "--seeds", "2", "--configs", "md_16x"]
    assert quality.main(argv + ["--out", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "ranking.json").read_text())["rows"]
    assert 0 < row["ndcg_at_10"] <= 1 and 0 < row["recall_at_10"] <= 1
    assert row["ndcg_at_10_std"] > 0  # two seeds rank differently


def test_a_sparsity_run_scores_each_activity_bucket(tiny, tmp_path):
    assert quality.main(["--group", "sparsity", "--datasets", tiny, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "sparsity.json").read_text())["rows"]
    labels = {r["regularization"] for r in rows}
    assert labels == {"per-lookup L2 0.04 only", "its own (l2 0.02, l2_per_id 5)"}
    assert all(r["epochs"] == 3 and r["rmse_tables_zeroed"] > 0 for r in rows)
    assert [r["user_train_ratings"] for r in rows][-1] == "all"


def test_an_unknown_data_set_is_refused():
    with pytest.raises(SystemExit):
        quality.main(["--datasets", "nonsense"])


@pytest.mark.parametrize(
    "preset, row_updates, compiled",
    [("full", "dense", True), ("full", "catch_up", False), ("md_16x", "dense", False)],
)
def test_only_dense_adam_without_an_md_table_is_xla_compiled(preset, row_updates, compiled):
    config = quality.model_config.preset(preset).replace(row_updates=row_updates)
    model = model_lib.build_model(config, USERS, MOVIES, 3.5)
    assert training.uses_xla(model, "auto") is compiled
    assert training.uses_xla(model, True) is True
