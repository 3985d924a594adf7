# The image every component runs in on Kubeflow Pipelines / Vertex AI, and
# the Vertex AI Training job with --vertex-training. Build from the repository
# root (see docs/deploy.md):
#   docker build -t IMAGE .
FROM tensorflow/tfx:1.16.0

# kubeflow_v2_runner.py points components at files under this folder
# (CONTAINER_PROJECT_ROOT in pipeline/cloud.py): ImportSchemaGen reads
# schema/schema.pbtxt and Dataflow jobs build this package from setup.py.
# Keep the two in step.
WORKDIR /pipeline
COPY . /pipeline

# Non-editable install, so components import the code by module path
# (components.preprocessing.preprocessing_fn, trainer.task.run_fn) from
# site-packages wherever they start. constraints.txt holds the versions the
# pipeline is tested with; pip moves the base image's packages to them.
# The import from / checks the installed copy, not the one in WORKDIR.
RUN python -m pip install --no-cache-dir -c constraints.txt . \
    && cd / \
    && python -c "import components.preprocessing, pipeline.pipeline, trainer.task"

# The ENTRYPOINT stays the base image's (Beam's worker boot, needed when
# Dataflow runs workers in this image); Kubeflow and Vertex AI set each
# component's command themselves.
