"""``lstm-service alias | shadow | promote | rollback | compare | rollout``: a model's rollout from the shell.

The commands change the rollout file in the model store (the one every server sharing the store follows
within ``LSTM_SERVICE_ROLLOUT_POLL_SECONDS``) and read the prediction log for the evidence, so they need
no running server: ``--model-store`` and ``--prediction-log`` default to the server's variables. Exit
status: 0 done, 1 a promotion refused on the evidence, 2 bad input (nothing changed).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.predictions.sql import SqlStore

COMMANDS = ("alias", "shadow", "promote", "rollback", "compare", "rollout")


def _common(parser: argparse.ArgumentParser, log: bool = False) -> None:
    parser.add_argument(
        "--model-store",
        default=None,
        help="the model store (default: $LSTM_SERVICE_MODEL_STORE, else the repository's model_store)",
    )
    if log:
        parser.add_argument(
            "--prediction-log",
            default=os.environ.get("LSTM_SERVICE_PREDICTION_LOG"),
            help="the SQL prediction log with feedback (sqlite:///... or postgresql://...; default: "
            "$LSTM_SERVICE_PREDICTION_LOG)",
        )


def _change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--why", default=None, help="why (kept in the model's history)")
    parser.add_argument("--by", default=None, help="who (kept in the history; default: user@host)")


def add_parsers(commands: Any) -> None:
    alias = commands.add_parser(
        "alias",
        help="point an alias at a version (with --weight: a canary share of the traffic)",
        description="Point ALIAS of MODEL at VERSION; --weight P gives it P %% of the requests that name no "
        "version; --remove removes it.",
    )
    alias.add_argument("model")
    alias.add_argument("alias")
    alias.add_argument("version", nargs="?", type=int)
    alias.add_argument("--weight", type=float, default=None, help="percent of unpinned traffic (0-100)")
    alias.add_argument("--remove", action="store_true", help="remove the alias")
    _common(alias)
    _change(alias)

    shadow = commands.add_parser(
        "shadow",
        help="let a version shadow a model's traffic (or --off)",
        description="Copy PERCENT %% of MODEL's answered requests to VERSION, classified in the background "
        "and logged beside the primary's answers; --off stops it.",
    )
    shadow.add_argument("model")
    shadow.add_argument("version", nargs="?", type=int)
    shadow.add_argument("--percent", type=float, default=100.0)
    shadow.add_argument("--off", action="store_true")
    _common(shadow)
    _change(shadow)

    promote = commands.add_parser(
        "promote",
        help="make a version stable (refused when feedback shows it worse)",
        description="Point --alias (default stable: the version answering unpinned traffic) at VERSION (a "
        "number or an alias such as canary), unless the logged feedback shows it significantly less "
        "accurate than the version it replaces (McNemar's exact test on the texts both answered, one-sided "
        "at 5 %%); --force promotes anyway.",
    )
    promote.add_argument("model")
    promote.add_argument("version")
    promote.add_argument("--alias", default="stable")
    promote.add_argument("--force", action="store_true")
    _common(promote, log=True)
    _change(promote)

    rollback = commands.add_parser(
        "rollback",
        help="undo the last change of the stable alias (or --alias)",
        description="Point --alias (default stable) back at the version it had before its last change.",
    )
    rollback.add_argument("model")
    rollback.add_argument("--alias", default="stable")
    _common(rollback)
    _change(rollback)

    compare = commands.add_parser(
        "compare",
        help="compare two versions on the prediction log and its feedback",
        description="Agreement, the confusion between the two versions' labels, live accuracy on feedback "
        "(Wilson intervals; McNemar's test on the texts both answered), latency p50/p99.",
    )
    compare.add_argument("model")
    compare.add_argument("a", help="a version, by number or alias")
    compare.add_argument("b", help="another version, by number or alias")
    compare.add_argument("--window-hours", type=float, default=168.0)
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    _common(compare, log=True)

    show = commands.add_parser("rollout", help="show a model's aliases, weights, shadow and history")
    show.add_argument("model")
    _common(show)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _log(url: str | None) -> SqlStore | None:
    if not url:
        return None
    if not url.startswith(("sqlite:///", "postgresql://")):
        raise ValueError(
            f"--prediction-log {url.split('://')[0]}://... has no feedback to weigh: use sqlite or postgresql"
        )
    from service.predictions.sql import SqlStore

    return SqlStore(url)


def main(namespace: argparse.Namespace) -> int:
    from service.bundle import default_store
    from service.errors import Conflict, ServiceError
    from service.rollout import changes
    from service.rollout.state import read

    store = Path(namespace.model_store).expanduser().resolve() if namespace.model_store else default_store()
    command = namespace.command
    who = getattr(namespace, "by", None) or f"{getpass.getuser()}@{socket.gethostname()}"
    actor = changes.Actor(who, getattr(namespace, "why", None))
    name = namespace.model
    try:
        if command == "rollout":
            changes.check_model(store, name)
            print(json.dumps(read(store, name).to_dict(), indent=1))
            return 0
        if command == "alias":
            if namespace.remove:
                outcome = changes.remove_alias(store, name, namespace.alias, actor)
            elif namespace.version is None:
                _say("lstm-service alias: give the VERSION the alias points at, or --remove")
                return 2
            else:
                outcome = changes.set_alias(
                    store, name, namespace.alias, namespace.version, actor, weight=namespace.weight
                )
        elif command == "shadow":
            if namespace.off:
                outcome = changes.remove_shadow(store, name, actor)
            elif namespace.version is None:
                _say("lstm-service shadow: give the VERSION that shadows the model, or --off")
                return 2
            else:
                outcome = changes.set_shadow(store, name, namespace.version, namespace.percent, actor)
        elif command == "promote":
            log = _log(namespace.prediction_log)
            version = changes.resolve(store, name, namespace.version)
            serving = log.serving_version(name) if log is not None else None  # what answers now
            outcome = changes.promote(
                store, name, version, actor,
                alias=namespace.alias, force=namespace.force, log=log, serving=serving,
            )  # fmt: skip
        elif command == "rollback":
            outcome = changes.rollback(store, name, actor, alias=namespace.alias)
        else:
            return _compare(store, namespace)
    except Conflict as refused:
        _say(f"lstm-service {command}: {refused.message}")
        return 1
    except ServiceError as error:
        _say(f"lstm-service {command}: {error.message}")
        return 2
    except ValueError as error:
        _say(f"lstm-service {command}: {error}")
        return 2
    print(outcome.message)
    return 0


def _compare(store: Path, namespace: argparse.Namespace) -> int:
    from service.rollout import changes

    log = _log(namespace.prediction_log)
    if log is None:
        _say(
            "lstm-service compare: needs the prediction log: --prediction-log or LSTM_SERVICE_PREDICTION_LOG"
        )
        return 2
    changes.check_model(store, namespace.model)
    a = changes.resolve(store, namespace.model, namespace.a)
    b = changes.resolve(store, namespace.model, namespace.b)
    comparison = changes.compare(log, namespace.model, a, b, namespace.window_hours)
    if namespace.json:
        print(json.dumps(comparison.to_dict(), indent=1))
        return 0
    print(_table(comparison.to_dict()))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _table(found: dict[str, Any]) -> str:
    a, b = found["a"], found["b"]
    lines = [
        f"{found['model']}: version {a['version']} against version {b['version']} "
        f"(answers of the last {found['window_hours']:g} h)",
        "",
        f"{'':24} {'version ' + str(a['version']):>14} {'version ' + str(b['version']):>14}",
        f"{'answers':24} {a['answers']:>14} {b['answers']:>14}",
        f"{'latency p50 (ms)':24} {a['latency_p50_ms'] or '-':>14} {b['latency_p50_ms'] or '-':>14}",
        f"{'latency p99 (ms)':24} {a['latency_p99_ms'] or '-':>14} {b['latency_p99_ms'] or '-':>14}",
        f"{'judged by feedback':24} {a['judged']:>14} {b['judged']:>14}",
        f"{'live accuracy':24} {_pct(a['accuracy']):>14} {_pct(b['accuracy']):>14}",
    ]
    for side in (a, b):
        if side["accuracy_interval"]:
            low, high = side["accuracy_interval"]
            lines.append(f"  version {side['version']}: 95 % interval {_pct(low)} to {_pct(high)}")
    paired = found["paired"]
    lines += [
        "",
        f"texts both answered: {found['texts_both_answered']}, agreement {_pct(found['agreement'])}",
        f"judged texts both answered: {paired['judged']} "
        f"(only {a['version']} right: {paired['only_a_right']}, "
        f"only {b['version']} right: {paired['only_b_right']}; McNemar one-sided p: {a['version']} better "
        f"{paired['mcnemar_p_a_better']:.3g}, {b['version']} better {paired['mcnemar_p_b_better']:.3g})",
        "",
        f"confusion (rows: version {a['version']}'s label, columns: version {b['version']}'s):",
    ]
    columns = sorted({label for row in found["confusion"].values() for label in row})
    if columns:
        width = max(8, *(len(label) for label in columns)) + 1
        lines.append(" " * width + "".join(f"{label:>{width}}" for label in columns))
        for label, row in found["confusion"].items():
            lines.append(f"{label:<{width}}" + "".join(f"{row.get(c, 0):>{width}}" for c in columns))
    return "\n".join(lines)
