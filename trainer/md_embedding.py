"""Kept for ``components/preprocessing*.py`` only: MD's blocking lives in
``trainer.embeddings.md``; remove this module once they import it from there."""

from trainer.embeddings.md import block_boundaries_equal_mass  # noqa: F401
