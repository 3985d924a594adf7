"""Quality and speed benchmarks of the embedding techniques and the pipeline (see README.md)."""

import os

# The benchmarks print their own progress; TensorFlow's start-up notices would bury it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
