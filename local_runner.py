"""Runs the pipeline on this machine: LocalDagRunner on Beam's DirectRunner.

  python local_runner.py                       # built-in synthetic data
  python local_runner.py --data ../ml-100k     # a MovieLens folder or file
  python local_runner.py --download ml-1m      # fetch and cache from GroupLens

Exits 0 when the model was blessed and pushed, 3 when the Evaluator did not
bless it (nothing pushed), 2 on bad input, 1 on any other failure.
"""

import argparse
import json
import logging
import os
import sys

EXIT_NOT_BLESSED = 3
EXIT_BAD_INPUT = 2

DEFAULT_OUTPUT_ROOT = "outputs"
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "memrec", "movielens"
)


def parse_args(argv=None):
    from trainer import model_config  # pylint: disable=g-import-not-at-top

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="PATH",
        help="MovieLens folder (u.data, ratings.dat or ratings.csv) or a "
        "ratings file. Default: the built-in synthetic set.",
    )
    source.add_argument(
        "--download",
        metavar="NAME",
        help="download a GroupLens MovieLens set (ml-100k, ml-1m, ml-20m, "
        "ml-latest-small) into --cache-dir and run on it",
    )
    parser.add_argument(
        "--cache-dir",
        default=DEFAULT_CACHE_DIR,
        help="where downloads are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--output-root",
        default=DEFAULT_OUTPUT_ROOT,
        help="artifacts, metadata and pushed models go under this folder (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        default="qr_md",
        choices=sorted(model_config.PRESETS),
        help="model preset (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument(
        "--no-cache", action="store_true", help="re-run every component even if nothing changed"
    )
    return parser.parse_args(argv)


def prepare_data(args) -> str:
    """Writes the chosen ratings as ExampleGen's CSV; returns its folder."""
    from components import movielens  # pylint: disable=g-import-not-at-top
    from components import synthetic  # pylint: disable=g-import-not-at-top

    if args.data:
        ratings = movielens.read_ratings(args.data)
        name = "local"
        print(f"Data: {ratings.source} ({ratings.format} format)")
    elif args.download:
        folder = movielens.download_movielens(args.download, args.cache_dir)
        ratings = movielens.read_ratings(folder)
        name = args.download
        print(f"Data: MovieLens {args.download} from {folder}")
    else:
        ratings = synthetic.generate_ratings()
        name = "builtin"
        print(
            "Data: the built-in SYNTHETIC MovieLens-shaped set (generated, "
            "not real MovieLens ratings). Pass --data or --download for real "
            "data."
        )
    print(
        f"      {len(ratings.ratings):,} ratings, "
        f"{len(set(ratings.user_ids)):,} users, "
        f"{len(set(ratings.movie_ids)):,} movies"
    )
    data_root = os.path.join(os.path.abspath(args.output_root), "data", name)
    movielens.write_normalized_csv(ratings, os.path.join(data_root, "ratings.csv"))
    return data_root


def main(argv=None) -> int:
    args = parse_args(argv)
    from components import movielens  # pylint: disable=g-import-not-at-top

    try:
        data_root = prepare_data(args)
    except (movielens.RatingsFormatError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # Heavy imports only once the input is known to be good.
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
    from pipeline import configs  # pylint: disable=g-import-not-at-top
    from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
    from pipeline import run_summary  # pylint: disable=g-import-not-at-top
    from trainer import model_config  # pylint: disable=g-import-not-at-top

    absl_logging.set_verbosity(absl_logging.INFO)
    model = model_config.preset(args.model)
    if args.epochs:
        model = model.replace(epochs=args.epochs)
    config = configs.PipelineConfig(
        data_root=data_root,
        output_root=os.path.abspath(args.output_root),
        model=model,
        beam_pipeline_args=configs.local_beam_pipeline_args(),
        enable_cache=not args.no_cache,
    )
    print(f"Model: {model.name} {model.to_json()}")
    tfx.orchestration.LocalDagRunner().run(
        pipeline_lib.create_pipeline(
            config,
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        )
    )

    summary = run_summary.summarize(config.metadata_path)
    print()
    print(summary.format())
    return 0 if summary.pushed else EXIT_NOT_BLESSED


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
