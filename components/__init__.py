"""TFX components and data input for the MovieLens recommender pipeline."""
