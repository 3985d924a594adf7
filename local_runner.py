"""Runs the pipeline on this machine: LocalDagRunner on Beam's DirectRunner engine.

  python local_runner.py                       # built-in synthetic data
  python local_runner.py --data ../ml-100k     # a MovieLens folder or ratings file
  python local_runner.py --download ml-1m      # fetch from GroupLens once, then cached

Exit status: 0 when the model was blessed and pushed; 3 when the Evaluator did not
bless it or it failed the serving check (nothing pushed, earlier pushed versions
untouched); 2 on bad input data or settings, or when another run holds the output
root; 1 on any other failure (a failed push included: nothing half-pushed is left);
130 when interrupted (Ctrl-C).

The terminal shows a line as each component starts and ends, the Trainer's progress
and the summary; everything TFX, Beam and TensorFlow log goes to
OUTPUT_ROOT/logs/run-<time>.log (--verbose: to the terminal as well).
"""

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys

import numpy as np

from components import features
from components import movielens
from components import synthetic
from pipeline import beam_plan
from pipeline import cli
from pipeline import configs
from pipeline import console
from pipeline import run_lock

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

SERVING_CHECK_PROCESS = "process"
SERVING_CHECK_DOCKER = "docker"

DEFAULT_OUTPUT_ROOT = "outputs"
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "memrec", "movielens"
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="PATH",
        help="MovieLens folder (u.data, ratings.dat or ratings.csv) or a ratings file, "
        "including a user_id,movie_id,rating CSV. Default: the built-in synthetic set.",
    )
    source.add_argument(
        "--download",
        metavar="NAME",
        choices=sorted(movielens.DATASETS),
        help="download a GroupLens MovieLens set into --cache-dir and run on it: %(choices)s",
    )
    parser.add_argument(
        "--cache-dir", default=DEFAULT_CACHE_DIR, help="where downloads are kept (%(default)s)"
    )
    parser.add_argument(
        "--output-root",
        default=DEFAULT_OUTPUT_ROOT,
        help="pipeline artifacts, ML Metadata and pushed models go here (%(default)s)",
    )
    cli.add_model_arguments(parser)
    cli.add_evaluation_arguments(parser)
    parser.add_argument(
        "--no-cache", action="store_true", help="re-run every component even if nothing changed"
    )
    parser.add_argument(
        "--serving-check",
        choices=[SERVING_CHECK_PROCESS, SERVING_CHECK_DOCKER],
        default=SERVING_CHECK_PROCESS,
        help="how the candidate is checked to serve before the push: process loads it the "
        "way TF Serving does in a fresh Python process; docker runs TFX's InfraValidator "
        f"with the {configs.DEFAULT_TF_SERVING_IMAGE} image in the local Docker engine "
        "(default: %(default)s)",
    )
    cli.add_beam_arguments(
        parser,
        examples=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        defaults="the local defaults (--runner=FnApiRunner --direct_running_mode=in_memory "
        "--direct_num_workers=1 --setup_file=...; on a ratings file of 64 MB or more, "
        "StatisticsGen, Transform and the Evaluator run in one worker process per CPU unless "
        "you set --direct_running_mode or --direct_num_workers)",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also stream everything TFX, Beam and TensorFlow log to the console; it always "
        "goes to the run's log file, OUTPUT_ROOT/logs/run-<time>.log",
    )
    return parser.parse_args(argv)


def prepare_data(args) -> str:
    """The ratings file ExampleGen reads; the built-in set is written as one first.

    Only the file's header and first lines are read here
    (``movielens.check_ratings_file``): ExampleGen reads and checks every row.
    """
    if not (args.data or args.download):
        print(
            "Data: the built-in SYNTHETIC MovieLens-shaped set (generated, not real MovieLens "
            "ratings). Pass --data or --download for real data."
        )
        ratings = synthetic.generate_ratings()
        print(
            f"      {len(ratings):,} ratings, {ratings.num_users:,} users, "
            f"{ratings.num_movies:,} movies"
        )
        path = os.path.join(os.path.abspath(args.output_root), "data", "builtin", "ratings.csv")
        movielens.write_normalized_csv(ratings, path)
        args.data_bytes = os.path.getsize(path)
        ids = (ratings.user_ids, ratings.movie_ids)
        _count_ratings(args, *(np.unique(side, return_counts=True)[1] for side in ids))
        return path
    if args.data:
        layout = movielens.check_ratings_file(args.data)
        print(f"Data: {layout.path} ({layout.spec.name} format, {layout.size / 1e6:,.1f} MB)")
    else:
        folder = movielens.download_movielens(args.download, args.cache_dir)
        layout = movielens.check_ratings_file(folder)
        print(f"Data: MovieLens {args.download} from {folder}")
    args.data_bytes = layout.size
    args.vocabulary_sizes = args.rating_counts = None
    if getattr(args, "embedding_budget", None) is not None:
        # Counting the ids reads the whole file: only a budget, fitted to them, pays for it.
        _count_ratings(args, *movielens.rating_counts(layout))
    return layout.path


def _count_ratings(args, user_counts, movie_counts) -> None:
    """Sets the vocabulary sizes and ratings per id the budget is fitted to: an
    upper bound on those Transform will read (the train split's)."""
    args.rating_counts = {"user_embedding": user_counts, "movie_embedding": movie_counts}
    args.vocabulary_sizes = {
        name: len(counts) + features.NUM_OOV_BUCKETS for name, counts in args.rating_counts.items()
    }


def pipeline_config(args, data_root: str, budget=None) -> configs.PipelineConfig:
    """The run's settings; ``budget`` is ``--embedding-budget``'s choice, made on the data."""
    plan = beam_plan.plan(getattr(args, "data_bytes", None), args.beam_args)
    return configs.PipelineConfig(
        data_root=data_root,
        output_root=os.path.abspath(args.output_root),
        model=cli.model_from_args(args, budget),
        evaluation=cli.evaluation_from_args(args),
        compare_full_model=args.compare_full_model,
        # The user's flags last: Beam takes the last value of a repeated flag.
        beam_pipeline_args=configs.local_beam_pipeline_args() + args.beam_args,
        parallel_step_beam_args=plan.parallel_step_args,
        evaluator_beam_args=plan.evaluator_args,
        enable_cache=not args.no_cache,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        # A bad model setting stops before any data is written; the budget
        # waits for the data's vocabulary sizes.
        cli.model_from_args(args, apply_budget=False)
        if not args.output_root.strip():
            # os.path.abspath("") is the current folder: everything would land there.
            raise ValueError("--output-root: must name a folder, got an empty string")
        check_serving_check(args)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(run_lock.hold(os.path.abspath(args.output_root)))
        except (run_lock.OutputRootBusyError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return run(args)


def check_serving_check(args) -> None:
    if args.serving_check == SERVING_CHECK_DOCKER and not shutil.which("docker"):
        raise ValueError(
            "--serving-check docker: no docker command on PATH; install Docker or use "
            f"--serving-check {SERVING_CHECK_PROCESS} (the same loading path, no container)"
        )


def run(args) -> int:
    """The run itself, with the output root held; bad input raises OSError/ValueError."""
    try:
        data_root = prepare_data(args)
        budget = cli.budget_choice(args, args.vocabulary_sizes, args.rating_counts)
        config = pipeline_config(args, data_root, budget)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.serving_check == SERVING_CHECK_DOCKER:
        config = dataclasses.replace(config, tf_serving_image=configs.DEFAULT_TF_SERVING_IMAGE)
    print(beam_plan.plan(args.data_bytes, args.beam_args).describe())
    print(f"Model: {config.model.name} {config.model.to_json()}")
    for line in budget.lines() if budget else ():
        print(line)

    # From here on what TFX, Beam and TensorFlow write goes to the run's log
    # (and with --verbose to the terminal too); the terminal gets a line per
    # component, the Trainer's progress and the summary.
    try:
        log = console.open_log(config.output_root)
    except OSError as e:
        print(f"error: cannot create the run's log: {e}", file=sys.stderr)
        return EXIT_FAILED
    with console.capture(log, verbose=args.verbose) as con:
        con.print(f"Log: {con.log_path}")
        try:
            return run_pipeline(config, con, budget and budget.budget)
        except KeyboardInterrupt:
            con.interrupted()
            return EXIT_INTERRUPTED
        except Exception as e:  # pylint: disable=broad-except
            # Its first line and the log's path; the traceback is in the log.
            con.failed(e)
            return EXIT_FAILED


def run_pipeline(config: configs.PipelineConfig, con: console.Console, budget=None) -> int:
    """Runs the pipeline and prints the summary (and whether the model kept
    ``budget``, an ``--embedding-budget``); what the user must fix exits 2."""
    # TFX takes seconds to import; only once the input is known to be readable.
    from absl import logging as absl_logging
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from components.pusher import PushError
    from components.validation_gate import DataAnomaliesError
    from pipeline import pipeline as pipeline_lib
    from pipeline import run_summary
    from trainer.embeddings import SpecVocabularyError

    absl_logging.set_verbosity(absl_logging.INFO)
    pipeline = pipeline_lib.create_pipeline(
        config, metadata.sqlite_metadata_connection_config(config.metadata_path)
    )
    con.expect([component.id for component in pipeline.components])
    try:
        LocalDagRunner().run(pipeline)
    except (
        DataAnomaliesError,
        SpecVocabularyError,
        movielens.RatingsFormatError,
        movielens.TooFewRatingsError,
    ) as e:
        # The data, or a setting the vocabulary cannot honour: the user's to fix.
        con.failed(e, whole_message=True)
        return EXIT_BAD_INPUT
    except PushError as e:
        con.failed(e, whole_message=True)
        return EXIT_FAILED
    con.pipeline_finished()

    facts = run_summary.collect(config.output_root, config.pipeline_name)
    con.print()
    con.print(run_summary.format_summary(facts))
    report = facts["models"][0]["memory_report"] if facts["models"] else None
    if budget is not None and report:
        from trainer.embeddings import budget as budget_lib

        con.print(budget_lib.check(report, budget)[1])
    if facts["blessing"]["pushed"]:
        print_sample_recommendations(facts["blessing"]["pushed_destination"], con)
    write_report(facts, con)
    con.print(f"Log:            {con.log_path}")
    return 0 if facts["blessing"]["pushed"] else EXIT_NOT_BLESSED


def print_sample_recommendations(version_dir: str, con: console.Console, k: int = 5) -> None:
    """The pushed model's top k for the most active user, asked as a client would."""
    import tensorflow as tf

    from components import features

    with open(os.path.join(version_dir, "assets", features.USER_VOCABULARY), "rb") as f:
        user = f.readline().rstrip(b"\n").partition(b" ")[2].decode()
    top = tf.saved_model.load(version_dir).signatures["recommend"](
        user_id=tf.constant([user]), k=tf.constant(k)
    )
    con.print(f"Top {k} for {user} (the most active user), from the pushed model's recommend:")
    for movie, rating in zip(top["movie_id"].numpy()[0], top["rating"].numpy()[0], strict=False):
        con.print(f"  {movie.decode():<24} {rating:.2f}")


def write_report(facts: dict, con: console.Console) -> None:
    """Writes OUTPUT_ROOT/report.json and the page, report.html; prints the page's path."""
    from pipeline import report

    try:
        path = report.write_report(facts)
    except Exception as e:  # pylint: disable=broad-except
        # The run's outcome (blessed, pushed) stands whatever happens to the page.
        con.error(f"warning: could not write the report: {e!r}")
        return
    con.print(f"Report:         {path}")


if __name__ == "__main__":
    sys.exit(main())
