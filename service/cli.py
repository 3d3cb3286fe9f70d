"""The ``lstm-service`` command.

- ``serve``: every setting is also a flag (``--model-store``, ``--port``...; flags override
  ``LSTM_SERVICE_*`` variables); the settings are validated here, before uvicorn starts.
- ``train``, ``export``, ``evaluate``: handed to ``training.cli.main(argv)``, imported only now, because the
  training side needs torch and the ``train`` extra, which a serving install does not have.
"""

from __future__ import annotations

import argparse
import importlib
import logging.config
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from service.settings import ENV_PREFIX, Settings, describe_error, log_startup_notes

TRAINING_COMMANDS = {
    "train": "train a model and write a bundle into the store",
    "export": "export a trained checkpoint to an ONNX bundle",
    "evaluate": "evaluate a model on a labelled file",
}


def _say(message: str) -> None:
    print(message, file=sys.stderr)  # the CLI's user messages; the service itself only logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-service", description="Train, export and serve embedding + LSTM text classifiers."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
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
    for command, help_text in TRAINING_COMMANDS.items():
        commands.add_parser(command, help=f"{help_text} (needs the train extra)", add_help=False)
    return parser


def serve(overrides: dict[str, str]) -> int:
    from service.observability.logs import logging_config  # uvicorn and the app only load for `serve`

    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]  # pydantic parses the strings
    except ValidationError as error:
        _say(f"lstm-service serve: the settings cannot work:\n{describe_error(error)}")
        return 2
    # Worker processes build their settings from the environment; hand the flags down that way.
    for name, value in overrides.items():
        os.environ[f"{ENV_PREFIX}{name.upper()}"] = value

    from service import server

    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(log_config)  # uvicorn applies it again; here so the notes below are formatted
    log_startup_notes(settings)

    # A second SIGTERM during the drain is handed to uvicorn, which re-raises it to the handler that was
    # there before once it has shut down; with the default handler a clean shutdown would end as "killed
    # by SIGTERM" (143).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        return server.run(settings, log_config)
    except KeyboardInterrupt:  # Ctrl-C, re-raised by uvicorn once it has shut down
        return 130


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_training_command(argv: Sequence[str]) -> int:
    """``training.cli.main(argv)`` with ``argv[0]`` the subcommand; exit 2 if the train extra is missing."""
    try:
        training_cli = importlib.import_module("training.cli")
    except ImportError as error:
        missing = error.name or str(error)
        _say(
            f"lstm-service {argv[0]} needs the training dependencies, which are not installed "
            f"(missing: {missing}).\nInstall them with: pip install 'lstm-service[train]'"
        )
        return 2
    return int(training_cli.main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:  # before argparse, so the training CLI sees every flag
        return run_training_command(argv)
    arguments = vars(build_parser().parse_args(argv))
    arguments.pop("command")
    return serve(arguments)
