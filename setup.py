"""Packaging for the memory-efficient recommender TFX pipeline.

The pipeline's components load the Transform and Trainer code by module path
(``components.preprocessing.preprocessing_fn``, ``trainer.task.run_fn``), so
this package must be installed wherever a component runs: the local
virtualenv, the Dataflow workers (``--setup_file``) and the Kubeflow image.
Exact versions live in ``constraints.txt``; here are the ranges the code
needs.
"""

import setuptools

setuptools.setup(
    name="memory-efficient-recsys-tfx",
    version="0.1.0",
    description=(
        "TFX pipeline for MovieLens rating prediction with quotient-remainder "
        "and mixed-dimension embeddings"
    ),
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(
        include=[
            "pipeline",
            "pipeline.*",
            "components",
            "components.*",
            "trainer",
            "trainer.*",
        ]
    ),
    # The raw data schema (configs.SCHEMA_DIR) and the report's page template
    # travel inside the package.
    package_data={"pipeline": ["schema/*.pbtxt", "templates/*"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow>=2.16,<2.17",
        "tensorflow-transform>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "keras>=3.0,<4",
        # tfx-bsl 1.16 imports dill, which current apache-beam no longer brings.
        "dill",
        "numpy>=1.22,<2",
        "pyarrow>=10,<11",  # ArrowCsvExampleGen; tfx-bsl 1.16's range
        "pandas",  # the benchmarks' data sets
        "tqdm",  # download progress
        "matplotlib>=3.8,<3.10",  # the run report's charts and the benchmark plots
        "Jinja2>=3.1,<4",  # the run report's page template
    ],
    extras_require={
        # kfp: the tests load the compiled Kubeflow / Vertex AI spec with it;
        # ruff: `make test` lints and checks formatting.
        "test": ["pytest>=8", "kfp>=2.5,<2.6", "ruff"],
        # Compiling for Kubeflow Pipelines v2 / Vertex AI (kubeflow_v2_runner.py).
        "kubeflow": ["kfp>=2.5,<2.6"],
    },
)
