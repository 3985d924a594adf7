"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines.

  python kubeflow_v2_runner.py --project my-project                 # writes pipeline.json
  python kubeflow_v2_runner.py --project my-project --dataflow      # Beam steps on Dataflow
  python kubeflow_v2_runner.py --project my-project --submit        # and start a Vertex run

Compiles the same ``create_pipeline`` as local_runner.py. Every component
runs in the image built from ./Dockerfile (--image), which installs this
package at /pipeline; data, artifacts and pushed models live in Cloud
Storage. Compiling is offline; only --submit talks to Google Cloud.
Step by step: docs/deploy.md.
"""

import argparse
import inspect
import os
import sys

from pipeline import cli
from pipeline import cloud
from pipeline import configs

PLATFORM_VERTEX = "vertex"
PLATFORM_KUBEFLOW = "kubeflow"

DEFAULT_OUTPUT_FILE = "pipeline.json"


def parse_args(argv=None) -> argparse.Namespace:
    """Parses the flags and fills in the defaults that derive from other flags."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_argument_group("where it runs")
    where.add_argument(
        "--platform",
        choices=[PLATFORM_VERTEX, PLATFORM_KUBEFLOW],
        default=PLATFORM_VERTEX,
        help="vertex: Vertex AI Pipelines, which runs TFX resolver nodes (the Evaluator "
        "compares each candidate with the latest blessed model); kubeflow: open-source "
        "Kubeflow Pipelines v2, which refuses resolver executors, so the spec has none and "
        "blesses on the absolute thresholds alone (default: %(default)s)",
    )
    where.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT"),
        help="GCP project (default: $GOOGLE_CLOUD_PROJECT)",
    )
    where.add_argument(
        "--region",
        default=cloud.DEFAULT_REGION,
        help="region of Vertex AI and Dataflow (default: %(default)s)",
    )
    where.add_argument(
        "--output-root",
        help="gs:// folder for everything the pipeline writes: the pipeline root is "
        "OUTPUT_ROOT/pipelines/PIPELINE_NAME, pushed models go to "
        "OUTPUT_ROOT/serving_model/PIPELINE_NAME (default: gs://PROJECT-memrec)",
    )
    where.add_argument(
        "--data-root",
        help="gs:// folder (or one file) of ratings: MovieLens files as GroupLens ships them "
        "(u.data, ratings.dat, ratings.csv) or a user_id,movie_id,rating CSV "
        "(default: OUTPUT_ROOT/data)",
    )
    where.add_argument(
        "--image",
        help="container image built from ./Dockerfile that every component runs in "
        "(default: REGION-docker.pkg.dev/PROJECT/memrec/pipeline:latest)",
    )
    where.add_argument(
        "--output-file",
        default=DEFAULT_OUTPUT_FILE,
        help="where to write the compiled pipeline; .json for Vertex AI (a PipelineJob), "
        ".yaml for Kubeflow Pipelines (a PipelineSpec) (default: %(default)s)",
    )

    what = parser.add_argument_group("what it runs")
    what.add_argument(
        "--pipeline-name",
        default=configs.PIPELINE_NAME,
        help="(default: %(default)s)",
    )
    cli.add_model_arguments(what)
    cli.add_evaluation_arguments(what)
    what.add_argument(
        "--no-cache", action="store_true", help="re-run every component even if nothing changed"
    )

    # Each step runs in its component's container unless one of these moves it.
    services = parser.add_argument_group("Google Cloud services")
    services.add_argument(
        "--dataflow",
        action="store_true",
        help="run the Beam steps (ExampleGen, StatisticsGen, Transform, Evaluator) on "
        "Dataflow (default: in each component's container)",
    )
    services.add_argument(
        "--vertex-training",
        action="store_true",
        help="train in a Vertex AI custom job (default: in the Trainer's container)",
    )
    services.add_argument(
        "--vertex-endpoint",
        action="store_true",
        help="deploy blessed models to a Vertex AI Endpoint (default: copy them to "
        "OUTPUT_ROOT/serving_model/PIPELINE_NAME)",
    )

    beam = parser.add_argument_group("Beam steps")
    beam.add_argument(
        "--dataflow-temp-location",
        help="gs:// folder for Dataflow's temporary files (default: OUTPUT_ROOT/tmp)",
    )
    cli.add_beam_arguments(
        beam,
        examples=["--worker_machine_type=n2-standard-8", "--max_num_workers=8"],
        defaults="the Dataflow defaults with --dataflow (--worker_machine_type="
        f"{cloud.DEFAULT_DATAFLOW_MACHINE_TYPE} --max_num_workers="
        f"{cloud.DEFAULT_DATAFLOW_MAX_WORKERS} and the rest, see docs/deploy.md), else the "
        f"in-container ones ({' '.join(cloud.container_beam_pipeline_args())})",
    )

    _add_setting_flags(
        parser.add_argument_group("Vertex AI Training"),
        cloud.vertex_training_config,
        "training_",
        {
            "machine_type": "machine type of the custom job",
            "accelerator_type": "e.g. NVIDIA_TESLA_T4 (default: none)",
            "accelerator_count": "how many accelerators of --training-accelerator-type",
        },
    )

    serving = parser.add_argument_group("Vertex AI Endpoint")
    serving.add_argument(
        "--endpoint-name", help="Vertex AI Endpoint display name (default: PIPELINE_NAME)"
    )
    _add_setting_flags(
        serving,
        cloud.vertex_serving_config,
        "serving_",
        {
            "image": "prediction container for the endpoint (default: Vertex AI's "
            f"{cloud.DEFAULT_SERVING_IMAGE_NAME} from the registry nearest REGION)",
            "machine_type": "machine type of the endpoint's replicas",
        },
    )

    submit = parser.add_argument_group("submitting")
    submit.add_argument(
        "--submit",
        action="store_true",
        help="after compiling, start a Vertex AI Pipelines run (needs google-cloud-aiplatform "
        "and credentials: gcloud auth application-default login)",
    )
    submit.add_argument(
        "--service-account",
        help="service account the Vertex AI run uses (default: the Compute Engine default)",
    )

    args = parser.parse_args(argv)
    _fill_in_derived_defaults(args, parser)
    return args


def _fill_in_derived_defaults(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    needs_project = (
        args.dataflow
        or args.vertex_training
        or args.vertex_endpoint
        or args.submit
        or not (args.output_root and args.image)
    )
    if needs_project and not args.project:
        parser.error("--project is required (or set GOOGLE_CLOUD_PROJECT)")
    if args.platform == PLATFORM_KUBEFLOW:
        vertex_only = {
            "--vertex-training": args.vertex_training,
            "--vertex-endpoint": args.vertex_endpoint,
            "--submit": args.submit,
        }
        for flag, given in vertex_only.items():
            if given:
                parser.error(f"{flag} needs --platform={PLATFORM_VERTEX}")

    args.output_root = (args.output_root or f"gs://{args.project}-memrec").rstrip("/")
    args.data_root = args.data_root or f"{args.output_root}/data"
    args.image = args.image or f"{args.region}-docker.pkg.dev/{args.project}/memrec/pipeline:latest"
    args.dataflow_temp_location = args.dataflow_temp_location or f"{args.output_root}/tmp"
    args.endpoint_name = args.endpoint_name or args.pipeline_name

    # Components run on Google Cloud and read and write these at run time;
    # a path on this machine would not exist there.
    for flag, value in [
        ("--output-root", args.output_root),
        ("--data-root", args.data_root),
        ("--dataflow-temp-location", args.dataflow_temp_location),
    ]:
        if not value.startswith("gs://"):
            parser.error(f"{flag} must be a gs:// path, got {value!r}")


def _add_setting_flags(group, function, prefix: str, helps: dict[str, str]) -> None:
    """A flag ``--<prefix><name>`` for each parameter ``name`` of ``function`` in ``helps``.

    Each takes the parameter's default and type, so cloud.py alone holds them;
    ``_called_with_flags`` passes the values back by the same names.
    """
    parameters = inspect.signature(function).parameters
    for name, help_text in helps.items():
        default = parameters[name].default
        group.add_argument(
            "--" + (prefix + name).replace("_", "-"),
            type=None if default is None else type(default),
            default=default,
            help=help_text if default is None else f"{help_text} (default: %(default)s)",
        )


def _called_with_flags(function, args: argparse.Namespace, prefix: str):
    """``function`` called with each parameter taken from the flag ``<prefix><name>``,
    else the flag ``<name>`` (``--project``, ``--region``, ``--image``); parameters
    no flag names keep their defaults."""
    settings = {}
    for name in inspect.signature(function).parameters:
        for attribute in (prefix + name, name):
            if hasattr(args, attribute):
                settings[name] = getattr(args, attribute)
                break
    return function(**settings)


def build_config(args: argparse.Namespace) -> configs.PipelineConfig:
    """The PipelineConfig for a run on Google Cloud, with paths inside the image."""
    model = cli.model_from_args(args)

    if args.dataflow:
        beam_pipeline_args = cloud.dataflow_beam_pipeline_args(
            project=args.project, region=args.region, temp_location=args.dataflow_temp_location
        )
    else:
        beam_pipeline_args = cloud.container_beam_pipeline_args()
    # The user's flags last: Beam takes the last value of a repeated flag.
    beam_pipeline_args += args.beam_args
    vertex_training = None
    if args.vertex_training:
        vertex_training = _called_with_flags(cloud.vertex_training_config, args, "training_")
    vertex_serving = None
    if args.vertex_endpoint:
        vertex_serving = _called_with_flags(cloud.vertex_serving_config, args, "serving_")

    return configs.PipelineConfig(
        data_root=args.data_root,
        output_root=args.output_root,
        pipeline_name=args.pipeline_name,
        model=model,
        evaluation=cli.evaluation_from_args(args),
        compare_full_model=args.compare_full_model,
        beam_pipeline_args=beam_pipeline_args,
        enable_cache=not args.no_cache,
        schema_dir=cloud.CONTAINER_SCHEMA_DIR,
        vertex_training=vertex_training,
        vertex_serving=vertex_serving,
        compare_with_latest_blessed=args.platform == PLATFORM_VERTEX,
    )


def compile_pipeline(config: configs.PipelineConfig, image: str, output_file: str) -> dict:
    """Writes the pipeline as a KFP v2 spec to ``output_file``; returns it as a dict."""
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

    from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top

    output_dir, output_filename = os.path.split(output_file)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=output_dir or None,
        output_filename=output_filename,
    )
    return runner.run(pipeline_lib.create_pipeline(config))


def submit(args: argparse.Namespace, config: configs.PipelineConfig) -> None:
    """Starts a Vertex AI Pipelines run of the compiled spec."""
    # Only submitting needs the Vertex AI client; compiling stays offline.
    from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top

    job = aiplatform.PipelineJob(
        display_name=args.pipeline_name,
        template_path=args.output_file,
        pipeline_root=config.pipeline_root,
        enable_caching=config.enable_cache,
        project=args.project,
        location=args.region,
    )
    job.submit(service_account=args.service_account)
    print(f"Submitted: {job.resource_name}")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = build_config(args)
    except ValueError as e:  # a model setting out of range, named in one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    compile_pipeline(config, args.image, args.output_file)
    print(f"Wrote {args.output_file}")
    print(f"  image:         {args.image}")
    print(f"  pipeline root: {config.pipeline_root}")
    print(f"  data:          {config.data_root}")
    print(f"  Beam runner:   {'Dataflow' if args.dataflow else 'in each container'}")
    print(f"  training:      {'Vertex AI custom job' if args.vertex_training else 'in container'}")
    # The vocabularies live on Cloud Storage: the budget's specs are ratios that
    # follow them, and the Trainer's memory report (in the summary) shows what it kept.
    budget = cli.budget_choice(args)
    for line in budget.lines() if budget else ():
        print(f"  {line.strip()}")
    if config.vertex_serving:
        print(f"  serving:       Vertex AI Endpoint {args.endpoint_name!r}")
    else:
        print(f"  serving:       {config.serving_model_dir}")
    print("  push guarded:  Evaluator thresholds and ServingCheck (loads it as TF Serving does)")
    if config.compare_with_latest_blessed:
        print("  baseline:      the latest blessed model (a resolver node, run by Vertex AI)")
    else:
        print(
            "  baseline:      none: Kubeflow Pipelines v2 runs no resolver, so a candidate is "
            "not compared with the latest blessed model, only with the RMSE bound and the mean"
        )
    if args.submit:
        submit(args, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
