"""Trainer package: model code for the memory-efficient recommender."""
