"""Command-line flags shared by the runners: which model, when to bless it, and Beam's options.

``local_runner.py`` and ``kubeflow_v2_runner.py`` take the same model and
evaluation flags, so a configuration tried on a laptop compiles for Vertex AI
unchanged.
"""

import argparse
import dataclasses
import json
from collections.abc import Sequence

from pipeline import configs
from trainer import model_config
from trainer.embeddings import budget as budget_lib


def json_object(text: str) -> dict:
    """argparse type: a JSON object, e.g. an embedding spec."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got: {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def embedding_budget(text: str) -> budget_lib.Budget:
    """argparse type: a ratio such as 64x or a size such as 20MB."""
    try:
        return budget_lib.Budget.parse(text)
    except budget_lib.BudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_model_arguments(parser) -> None:
    parser.add_argument(
        "--model",
        default=model_config.DEFAULT_MODEL,
        choices=sorted(model_config.PRESETS),
        help="model preset (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, help="override the preset's number of epochs"
    )
    for feature in ("user", "movie"):
        parser.add_argument(
            f"--{feature}-embedding",
            type=json_object,
            metavar="JSON",
            help=f"override the preset's {feature} table, e.g. "
            '\'{"type": "qr", "num_buckets": 32}\' (see README: Models and their knobs)',
        )

    parser.add_argument(
        "--embedding-budget",
        type=embedding_budget,
        metavar="RATIO|SIZE",
        help="a memory budget for every id-indexed table (embeddings and per-id biases): "
        "a ratio to full 64-d tables plus full biases (64x) or fp32 bytes (20MB, 512KiB); "
        "picks the technique and knobs of each table by the rule in README "
        "(Memory budgets) and prints what it picked; replaces --user-embedding and "
        "--movie-embedding",
    )
    parser.add_argument(
        "--model-settings",
        type=json_object,
        metavar="JSON",
        help="override any other setting of the preset (trainer/model_config.py), e.g. "
        '\'{"l2_per_id": 20, "bias_l2_per_id": 5}\' for ids with few ratings each',
    )


def add_evaluation_arguments(parser) -> None:
    parser.add_argument(
        "--rmse-upper-bound",
        type=float,
        default=configs.EvalSettings.rmse_upper_bound,
        help="bless only models with eval RMSE at most this (%(default)s)",
    )
    parser.add_argument(
        "--rmse-max-increase",
        type=float,
        default=configs.EvalSettings.rmse_max_increase,
        help="bless only models whose eval RMSE exceeds the latest blessed model's by at "
        "most this (%(default)s)",
    )
    parser.add_argument(
        "--min-gain-over-mean",
        type=float,
        default=configs.EvalSettings.min_gain_over_mean,
        help="bless only models whose eval RMSE is at least this fraction below that of "
        "predicting the mean rating (1 - RMSE / std of the ratings); an untrained model "
        "gains about 0 (%(default)s)",
    )
    parser.add_argument(
        "--compare-full-model",
        action="store_true",
        help="also train the same model with full-size tables and evaluate against it, "
        "to see what compression costs per slice (a second Trainer and Evaluator)",
    )


def add_beam_arguments(parser, examples: list[str], defaults: str) -> None:
    """``--beam-arg FLAG`` (repeatable) into ``args.beam_args``: Beam options that the
    runner adds after its own, ``defaults`` in the help, so they override them.

    Args:
      parser: the parser or argument group to add the flag to.
      examples: Beam flags the help shows, the last one also in the error for a
        value that is no flag.
      defaults: what the runner's own Beam flags are, e.g. "the local defaults
        (--runner=FnApiRunner ...)".
    """

    def beam_flag(text: str) -> str:
        # Beam would drop it with no more than a logged warning ("unparseable args").
        if not text.startswith("--"):
            raise argparse.ArgumentTypeError(
                f"takes a Beam flag such as {examples[-1]}, got {text!r}"
            )
        return text

    parser.add_argument(
        "--beam-arg",
        dest="beam_args",
        action="append",
        default=[],
        type=beam_flag,
        metavar="FLAG",
        help="a Beam pipeline option for every Beam component, e.g. "
        + " ".join(f"--beam-arg={example}" for example in examples)
        + " (repeat for more; write it with '=' so the flag's dashes reach Beam). Added "
        f"after {defaults}, and Beam takes a flag's last value, so these override them",
    )


def budget_choice(
    args: argparse.Namespace,
    vocabulary_sizes: dict[str, int] | None = None,
    rating_counts: dict[str, Sequence[int]] | None = None,
) -> budget_lib.Choice | None:
    """What ``--embedding-budget`` picks for tables of ``vocabulary_sizes`` ids
    (``{"user_embedding": n, "movie_embedding": n}``; None: sizes unknown)
    whose ids have ``rating_counts`` ratings (same keys), or None without the flag.

    Raises:
      ValueError: one line, e.g. a size without vocabulary sizes.
    """
    if getattr(args, "embedding_budget", None) is None:
        return None
    for flag in ("user_embedding", "movie_embedding"):
        if getattr(args, flag):
            raise ValueError(
                f"--embedding-budget picks every table: drop --{flag.replace('_', '-')}"
            )
    try:
        return budget_lib.choose(args.embedding_budget, vocabulary_sizes, rating_counts)
    except budget_lib.BudgetError as error:
        raise ValueError(f"--embedding-budget: {error}") from None


def model_from_args(
    args: argparse.Namespace,
    choice: budget_lib.Choice | None = None,
    apply_budget: bool = True,
) -> model_config.ModelConfig:
    """The preset with the flags' overrides, every setting checked;
    ``--embedding-budget``'s tables unless ``apply_budget`` is false (a check
    before the vocabulary sizes are known): ``choice``, the ``budget_choice``
    the runner made on its vocabularies, or without it one on none.

    Raises:
      ValueError: one line naming the flag, the setting and what it allows,
        e.g. ``--model-settings: batch_size must be an integer >= 1, got 0``
        or ``--user-embedding: unknown key 'bukets' for type qr (known: ...)``.
    """
    try:
        model = model_config.preset(args.model)
    except ValueError as error:
        raise ValueError(f"--model: {error}") from None
    # Which flag set each field, so an error names the flag the user typed.
    overrides, flag_of = {}, {}
    if args.epochs:
        overrides["epochs"], flag_of["epochs"] = args.epochs, "--epochs"
    for field in ("user_embedding", "movie_embedding"):
        if getattr(args, field):
            overrides[field] = getattr(args, field)
            flag_of[field] = "--" + field.replace("_", "-")
    if not apply_budget:
        choice = None
    elif choice is None:
        choice = budget_choice(args)
    for field, value in (choice.settings if choice else {}).items():
        overrides[field], flag_of[field] = value, "--embedding-budget"
    for field, value in (args.model_settings or {}).items():
        overrides[field], flag_of[field] = value, "--model-settings"
    if not overrides:
        return model
    try:
        # Through from_dict, so a misspelt setting is an error naming the known ones.
        return model_config.ModelConfig.from_dict({**dataclasses.asdict(model), **overrides})
    except model_config.SettingError as error:
        flag = flag_of.get(error.setting)
        if flag is None:  # a preset value that no longer fits what a flag changed
            flag = "--model-settings" if args.model_settings else f"--model {args.model}"
            raise ValueError(f"{flag}: {error}") from None
        if flag == "--model-settings":
            raise ValueError(f"{flag}: {error}") from None
        raise ValueError(f"{flag}: {error.detail}") from None


def evaluation_from_args(args: argparse.Namespace) -> configs.EvalSettings:
    return configs.EvalSettings(
        rmse_upper_bound=args.rmse_upper_bound,
        rmse_max_increase=args.rmse_max_increase,
        min_gain_over_mean=args.min_gain_over_mean,
    )
