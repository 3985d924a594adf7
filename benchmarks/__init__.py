"""Quality and ablation benchmarks of the embedding techniques (see README.md)."""
