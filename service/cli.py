"""The ``lstm-service`` command: ``serve``, ``keygen`` (a key pair for signed bundles), ``score`` (a whole
file of texts, :mod:`service.scoring`), and a model's rollout: ``alias``, ``shadow``, ``promote``,
``rollback``, ``compare``, ``rollout`` (:mod:`service.rollout.command`).

Every setting is also a flag (``--model-store``, ``--port``...; flags override ``LSTM_SERVICE_*``
variables); the settings are validated here, before uvicorn starts, and handed to the server (and to its
worker processes) as one :class:`~service.settings.Settings` object. Training, export and evaluation are
the ``lstm-train`` command's: the serving side never imports the training code.
"""

from __future__ import annotations

import argparse
import logging.config
import sys
from collections.abc import Sequence
from pathlib import Path

# Commands ``lstm-service`` once had; they answer with a pointer to the command that has them now.
TRAINING_COMMANDS = ("train", "export", "evaluate")


def _say(message: str) -> None:
    print(message, file=sys.stderr)  # the CLI's user messages; the service itself only logs


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="lstm-service",
        description="Serve embedding + LSTM text classifiers (train, export and evaluate: lstm-train).",
    )
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND", required=True)


def _score_parser() -> argparse.ArgumentParser:
    """The parser of ``lstm-service score`` alone: the standard library's, nothing more imported."""
    from service.scoring.command import add_parser as add_score_parser

    parser, commands = _parser()
    add_score_parser(commands)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from service.settings import ENV_PREFIX, Settings

    parser, commands = _parser()
    serve = commands.add_parser(
        "serve",
        help="serve the models of a store over HTTP",
        description="Serve every model of the store. Each flag overrides its LSTM_SERVICE_* variable.",
    )
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,  # absent flags leave the environment (or the default) in charge
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} [{ENV_PREFIX}{name.upper()}; default: {default}]",
        )
    keygen = commands.add_parser(
        "keygen",
        help="write an Ed25519 key pair for signing bundles",
        description="Write a new Ed25519 key pair as PEM files: sign bundles with the private one "
        "(lstm-train --sign-key), serve with the public one (LSTM_SERVICE_BUNDLE_PUBLIC_KEY).",
    )
    keygen.add_argument("--private", required=True, help="the private key's file (created, mode 600)")
    keygen.add_argument("--public", required=True, help="the public key's file")
    from service.scoring.command import add_parser as add_score_parser  # stdlib only until it runs

    add_score_parser(commands)
    from service.rollout.command import add_parsers as add_rollout_parsers

    add_rollout_parsers(commands)
    return parser


def keygen(private: str, public: str) -> int:
    from service.bundle import write_key_pair

    try:
        write_key_pair(Path(private), Path(public))
    except FileExistsError:
        _say(f"lstm-service keygen: {private} exists already; remove it or choose another file")
        return 2
    except OSError as error:
        _say(f"lstm-service keygen: cannot write the keys: {error}")
        return 2
    _say(f"wrote {private} (keep it with whoever trains models) and {public} (for the service)")
    return 0


def serve(overrides: dict[str, str]) -> int:
    from pydantic import ValidationError

    from service.observability.logs import logging_config  # uvicorn and the app only load for `serve`
    from service.settings import Settings, describe_error, log_startup_notes

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic parses the strings
    except ValidationError as error:
        _say(f"lstm-service serve: the settings cannot work:\n{describe_error(error)}")
        return 2

    from service import launch

    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(log_config)  # uvicorn applies it again; here so the notes below are formatted
    log_startup_notes(settings)

    try:
        return launch.run(settings, log_config)
    except KeyboardInterrupt:  # Ctrl-C before the server took over SIGINT
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:
        _say(f"lstm-service {argv[0]}: training commands are lstm-train's now: lstm-train {argv[0]} --help")
        return 2
    if argv and argv[0] == "score":  # pydantic and the settings stay out of the command's memory
        from service.scoring.command import main as score

        return score(_score_parser().parse_args(argv))
    namespace = build_parser().parse_args(argv)
    from service.rollout.command import COMMANDS as ROLLOUT_COMMANDS

    if namespace.command in ROLLOUT_COMMANDS:
        from service.rollout.command import main as rollout

        return rollout(namespace)
    arguments = vars(namespace)
    if arguments.pop("command") == "keygen":
        return keygen(arguments["private"], arguments["public"])
    return serve(arguments)
