"""Version claims in the store and one run folder per version: two runs of the same ``--name`` started
together never share a version or a run folder.

A run claims its version before any work starts by creating ``<store>/<name>/.<version>.claim`` with
``O_CREAT | O_EXCL`` (atomic: of two runs, exactly one creates the file); the other takes the next number.
The claim holds the claiming process's id and is removed when the run ends, bundle written or not; a claim
whose process is gone is stale and is cleared by the next run. The service never reads claims (they are
hidden files, not version folders).

The default run folder is ``runs/<name>/<version>``. It holds ``run.json`` (the version and the command)
from the start and ``finished.json`` once the bundle is written, so ``--resume`` finds the interrupted run
of a name and refuses a finished one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from service.bundle import list_versions
from training.data.reading import DataError

logger = logging.getLogger(__name__)

RUNS = Path("runs")
RUN_FILE, FINISHED_FILE, LAST_CHECKPOINT = "run.json", "finished.json", "last.pt"


def claim_path(store: Path, name: str, version: int) -> Path:
    return Path(store) / name / f".{version}.claim"


def alive(pid: int) -> bool:
    """Is process ``pid`` running (whoever's it is)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claimed_versions(store: Path, name: str) -> list[int]:
    """Versions claimed by running trainings (stale claims, of processes that are gone, are removed)."""
    folder = Path(store) / name
    if not folder.is_dir():
        return []
    claimed = []
    for entry in folder.glob(".*.claim"):
        number = entry.name[1 : -len(".claim")]
        if not number.isdigit():
            continue
        try:
            pid = int(entry.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # being written this instant: it stands
        if alive(pid):
            claimed.append(int(number))
        else:
            entry.unlink(missing_ok=True)
    return sorted(claimed)


def taken(store: Path, name: str) -> set[int]:
    return set(list_versions(store, name)) | set(claimed_versions(store, name))


def claim_version(store: Path, name: str, wanted: int | None, above: int = 0) -> int:
    """Claim ``wanted`` (refused if taken), else the lowest version above ``above`` and every present or
    claimed one."""
    folder = Path(store) / name
    folder.mkdir(parents=True, exist_ok=True)
    version = wanted if wanted is not None else max(taken(store, name) | {above}) + 1
    while True:
        try:
            handle = os.open(claim_path(store, name, version), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileNotFoundError:  # another run's release removed the empty folder meanwhile
            folder.mkdir(parents=True, exist_ok=True)
            continue
        except FileExistsError:
            if wanted is not None:
                raise DataError(
                    f"{name} version {version} is being trained by another run right now; leave out "
                    "--version to take the next free one"
                ) from None
            version += 1
            continue
        with os.fdopen(handle, "w") as claim:
            claim.write(f"{os.getpid()}\n")
        if (folder / str(version)).exists():  # written between the listing and the claim
            release(store, name, version)
            if wanted is not None:
                raise DataError(f"{name} version {version} already exists in {store}")
            version += 1
            continue
        return version


def release(store: Path, name: str, version: int) -> None:
    """Drop the claim; a model folder left empty by it goes too (a refused run leaves nothing behind)."""
    claim_path(store, name, version).unlink(missing_ok=True)
    try:
        (Path(store) / name).rmdir()
    except OSError:  # not empty (other versions, other claims) or already gone
        pass


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def interrupted_versions(name: str, root: Path = RUNS) -> set[int]:
    """The versions whose default run folder holds an interrupted run: a new run leaves them to --resume."""
    return {int(folder.name) for folder in interrupted_runs(name, root) if folder.name.isdigit()}


def interrupted_runs(name: str, root: Path = RUNS) -> list[Path]:
    """Run folders of ``name`` under ``root`` with a checkpoint and no bundle yet, newest version first
    (the folder of the older layout, ``runs/<name>`` itself, last)."""
    folder = Path(root) / name
    if not folder.is_dir():
        return []
    found = [
        entry for entry in folder.iterdir() if entry.is_dir() and entry.name.isdigit() and _unfinished(entry)
    ]
    found.sort(key=lambda entry: int(entry.name), reverse=True)
    return found + ([folder] if _unfinished(folder) else [])


def _unfinished(folder: Path) -> bool:
    return (folder / LAST_CHECKPOINT).is_file() and not (folder / FINISHED_FILE).is_file()


def resume_folder(name: str, run_dir: Path | None, epochs: int | None = None) -> Path:
    """The run folder ``--resume`` continues: ``run_dir``, else the newest interrupted run of ``name``.
    Refused when there is none, or when that run has finished (its bundle is written) and ``epochs``
    would not train it further (it stopped early, or it ran that many epochs already)."""
    if run_dir is None:
        candidates = interrupted_runs(name)
        if not candidates:
            raise DataError(
                f"--resume: no interrupted run of {name} under {RUNS / name} (a run folder with "
                f"{LAST_CHECKPOINT} and no bundle yet); pass its --run-dir, or train without --resume"
            )
        run_dir = candidates[0]
    run_dir = Path(run_dir)
    finished = read_json(run_dir / FINISHED_FILE)
    if finished is not None and finished.get("bundle") is None:
        raise DataError(
            f"--resume: the run in {run_dir} ended, below the floor, without a bundle; there is nothing to "
            f"resume. Publish it anyway with lstm-train export --checkpoint {run_dir} --allow-weak, or "
            "train again without --resume"
        )
    if finished is not None and not _extends(finished, epochs):
        raise DataError(
            f"--resume: the run in {run_dir} finished and wrote {finished.get('bundle')}; there is nothing "
            "to resume (it would write the same model again as a new version). Train again without "
            "--resume for a new version"
            + ("" if finished.get("stopped_early") else ", or pass a larger --epochs to train it further")
        )
    if not (run_dir / LAST_CHECKPOINT).is_file():
        raise DataError(f"--resume: no {LAST_CHECKPOINT} in {run_dir}; start the run without --resume")
    return run_dir


def refuse_overwrite(run_dir: Path, resume: bool) -> None:
    """A given run folder holding an interrupted run is not overwritten from epoch 1 by accident."""
    if resume or not _unfinished(run_dir):
        return
    state = read_json(run_dir / RUN_FILE) or {}
    raise DataError(
        f"{run_dir} holds an interrupted run{_epoch_said(state)}: add --resume to continue it, or pass "
        "another --run-dir to start afresh"
    )


def _epoch_said(state: dict[str, Any]) -> str:
    return f" (version {state['version']})" if "version" in state else ""


def mark_started(run_dir: Path, version: int, command: str | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps({"version": version, "command": command}, indent=1) + "\n")


def _extends(finished: dict[str, Any], epochs: int | None) -> bool:
    """More epochs for a finished run that did not stop early: a new model, not the same one again."""
    ran = finished.get("epochs_run")
    if epochs is None or finished.get("stopped_early") or not isinstance(ran, int):
        return False
    return epochs > ran


def mark_finished(
    run_dir: Path, bundle: Path | None, epochs_run: int | None = None, stopped_early: bool | None = None
) -> None:
    """The run ended: its bundle, or None where the model was refused (nothing left to resume)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "bundle": str(bundle) if bundle is not None else None,
        "epochs_run": epochs_run,
        "stopped_early": stopped_early,
    }
    (run_dir / FINISHED_FILE).write_text(json.dumps(record, indent=1) + "\n")
