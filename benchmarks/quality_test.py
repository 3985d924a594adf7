"""Rows of the quality benchmark are labelled by the tables they build (no training)."""

from benchmarks import quality
from benchmarks import report
from trainer import model as model_lib

# Zipf-like popularity: the alpha rule gives the blocks different widths.
USERS = [int(20000 / (i + 1)) + 1 for i in range(300)]
MOVIES = [int(20000 / (i + 1)) + 1 for i in range(500)]


def _tables(config):
    return model_lib.id_embeddings(config, USERS, MOVIES)


def _entry(config):
    return next(e for e in quality.entries([8, 16, 32]) if e.config == config)


def test_md_rows_report_their_block_dims():
    entry = _entry("md_16x")
    dims = quality.block_dims(_tables(entry.model))
    assert set(dims) == {"user_id", "movie_id"}
    assert all(len(d) == 4 for d in dims.values())
    assert quality.block_dims(_tables(_entry("uniform_16x").model)) == {}


def test_an_md_row_whose_blocks_all_have_one_width_counts_as_uniform():
    entry = _entry("md_16x")
    assert quality.built_technique("md", _tables(entry.model)) == "md"
    one_width = entry.model.replace(
        user_embedding={"type": "md", "blocks": 4, "dims": [4, 4, 4, 4]},
        movie_embedding={"type": "md", "blocks": 2, "dims": [4, 4]},
    )
    assert quality.built_technique("md", _tables(one_width)) == "uniform"
    # A QR tail keeps a table compressed whatever its block widths.
    with_tail = one_width.replace(
        movie_embedding={"type": "md", "blocks": 2, "dims": [4, 4], "tail_qr": {}}
    )
    assert quality.built_technique("md", _tables(with_tail)) == "md"
    assert quality.built_technique("qr", _tables(one_width)) == "qr"


def test_the_markdown_lists_md_block_dims():
    row = {"block_dims": {"user_id": [6, 5], "movie_id": [6, 3]}}
    assert report._dims_text(row) == "6 5; 6 3"
    assert report._dims_text({"block_dims": {"movie_id": [6, 3]}}) == "-; 6 3"
    assert report._dims_text({}) == ""
