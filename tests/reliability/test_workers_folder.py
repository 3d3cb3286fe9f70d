"""The workers' shared admin folder cannot be taken over by another local user.

A folder another user owns, or that others may write to, or a link in its place, is refused; files in it
are never written through a link; a log entry that names a path instead of a model, or is malformed, is
skipped with an ERROR line (never a failed start); a real ``--workers 2`` server makes its own folder
(0700) and never uses one planted where it might look.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.live_server import LiveServer
from support.stores import rewrite_manifest

from service.engine import workers_folder
from service.engine.coordination import Coordinator, shared_folder
from service.engine.registry import Registry

NOBODY = 65534
TOKEN = "workers-folder-token"


@pytest.fixture
def folder() -> Iterator[Path]:
    made = workers_folder.create_folder()
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def registry(store_copy: Path) -> Registry:
    loaded = Registry(store_copy, default_model="tiny-en")
    loaded.load_all()
    return loaded


def _write_log(folder: Path, entries: object) -> None:
    (folder / "actions.json").write_text(json.dumps(entries), encoding="utf-8")


# -- the folder itself ----------------------------------------------------------------------------------


def test_a_fresh_folder_is_accepted_and_owner_only(folder: Path):
    assert workers_folder.check_folder(folder) == folder
    info = folder.stat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o700, os.geteuid())


def test_a_folder_of_another_user_is_refused(folder: Path):
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(workers_folder.FolderRefused, match=f"belongs to user id {NOBODY}"):
        workers_folder.check_folder(folder)


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o710])
def test_a_folder_others_may_use_is_refused(folder: Path, mode: int):
    folder.chmod(mode)
    with pytest.raises(workers_folder.FolderRefused, match=f"mode {mode:o}"):
        workers_folder.check_folder(folder)


def test_a_link_to_a_good_folder_is_refused(folder: Path, tmp_path: Path):
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(workers_folder.FolderRefused, match="not a directory"):
        workers_folder.check_folder(link)


def test_the_handed_folder_is_checked_before_use(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv(workers_folder.FOLDER_VARIABLE, str(folder))
    assert shared_folder(2) == folder
    assert shared_folder(1) is None  # one process needs none
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(workers_folder.FolderRefused):
        shared_folder(2)
    monkeypatch.setenv(workers_folder.FOLDER_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(workers_folder.FolderRefused, match="cannot be read"):
        shared_folder(2)


# -- links planted inside ------------------------------------------------------------------------------


def test_acknowledgements_and_the_log_never_write_through_a_link(
    folder: Path, registry: Registry, tmp_path: Path
):
    victim = tmp_path / "victim"
    victim.write_text("root only", encoding="utf-8")
    pid = os.getpid()
    for name in (f".ack-{pid}", f"ack-{pid}", f".actions.json.{pid}"):
        (folder / name).symlink_to(victim)
    coordinator = Coordinator(registry, folder, 2)

    coordinator.catch_up()  # writes this worker's acknowledgement
    coordinator.run({"op": "unload", "name": "tiny-zh"}, lambda: registry.unload("tiny-zh"))

    assert victim.read_text(encoding="utf-8") == "root only"
    assert not (folder / f"ack-{pid}").is_symlink() and (folder / f"ack-{pid}").read_text() == "1"
    assert json.loads((folder / "actions.json").read_text())[0]["name"] == "tiny-zh"


def test_a_linked_lock_file_is_refused(folder: Path, registry: Registry, tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_text("root only", encoding="utf-8")
    (folder / "lock").symlink_to(victim)
    coordinator = Coordinator(registry, folder, 2)
    with pytest.raises(OSError):
        coordinator.run({"op": "unload", "name": "tiny-zh"}, lambda: registry.unload("tiny-zh"))
    assert victim.read_text(encoding="utf-8") == "root only"
    assert "tiny-zh" in registry.names  # refused before anything was applied


def test_a_linked_log_is_ignored(folder: Path, registry: Registry, tmp_path: Path, caplog):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps([{"id": 1, "op": "unload", "name": "tiny-zh"}]), encoding="utf-8")
    (folder / "actions.json").symlink_to(elsewhere)
    with caplog.at_level(logging.ERROR):
        Coordinator(registry, folder, 2).catch_up()
    assert "tiny-zh" in registry.names
    assert "admin log is unreadable" in caplog.text


# -- what the log says ---------------------------------------------------------------------------------


def test_path_names_and_malformed_entries_are_skipped(
    folder: Path, registry: Registry, store_copy: Path, tmp_path: Path, caplog
):
    outside = Path(shutil.copytree(store_copy / "tiny-zh" / "1", tmp_path / "outside" / "1"))
    rewrite_manifest(outside, lambda manifest: manifest.update(name="outside"))
    relative = os.path.relpath(outside.parent, store_copy)  # ../outside
    _write_log(
        folder,
        [
            "not an action",
            {"id": 1, "op": "load", "name": relative, "version": 1, "pin": True},
            {"id": 2, "op": "load", "name": "tiny-en\n", "version": 1},
            {"id": 3, "op": "load", "name": "tiny-en", "version": "1"},
            {"id": 4, "op": "drop", "name": "tiny-en"},
            {"id": 5, "op": "unload", "name": "tiny-zh"},
        ],
    )
    coordinator = Coordinator(registry, folder, 2)
    with caplog.at_level(logging.ERROR):
        coordinator.catch_up()

    assert registry.names == ["tiny-en"]  # the one well-formed action applied, nothing else
    assert registry.get().version == 1 and "outside" not in registry.names
    assert coordinator.applied == 5
    assert caplog.text.count("skipping a malformed entry") == 5


def test_a_log_that_is_not_json_is_skipped(folder: Path, registry: Registry, caplog):
    (folder / "actions.json").write_text("[{not json", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        Coordinator(registry, folder, 2).catch_up()
    assert registry.names == ["tiny-en", "tiny-zh"]
    assert "admin log is unreadable" in caplog.text


def test_the_registry_refuses_a_path_for_a_name(registry: Registry, store_copy: Path, tmp_path: Path):
    outside = Path(shutil.copytree(store_copy / "tiny-zh" / "1", tmp_path / "outside" / "1"))
    rewrite_manifest(outside, lambda manifest: manifest.update(name="outside"))
    relative = os.path.relpath(outside.parent, store_copy)
    for name in (relative, "tiny-zh\n", "."):
        outcome = registry.reload(name, 1, pin=True, kind="admin")
        assert outcome.missing and outcome.reason == "invalid model name or version"
    assert registry.names == ["tiny-en", "tiny-zh"]


# -- a real server with two workers --------------------------------------------------------------------


def _server(store: Path, tmp_path: Path, env: dict[str, str] | None = None) -> LiveServer:
    return LiveServer.start(
        store,
        tmp_path / "server.log",
        flags=["--workers", "2", "--default-model", "tiny-en"],
        env={"LSTM_SERVICE_ADMIN_TOKEN": TOKEN, "LSTM_SERVICE_RELOAD_INTERVAL_SECONDS": "0", **(env or {})},
    )


def _served_folder(server: LiveServer) -> Path:
    for record in server.log_records():
        found = re.match(r"the workers share the admin folder (\S+)", record.get("message", ""))
        if found:
            return Path(found[1])
    raise AssertionError("the supervisor did not name its folder")


def _worker_pids(server: LiveServer) -> list[int]:
    for record in server.log_records():
        found = re.search(r"workers started \[([\d, ]+)\]", record.get("message", ""))
        if found:
            return [int(pid) for pid in found[1].split(",")]
    raise AssertionError("the supervisor did not name its workers")


def _both_workers(server: LiveServer, path: str) -> set[int]:
    """Status codes of 20 calls on fresh connections (both workers take some)."""
    return {server.call("GET", path).status for _ in range(20)}


@pytest.mark.slow
def test_a_planted_folder_is_never_used(store_copy: Path, tmp_path: Path):
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    _write_log(planted, [{"id": 1, "op": "unload", "name": "tiny-zh"}])
    os.chown(planted, NOBODY, NOBODY)
    server = _server(store_copy, tmp_path, env={workers_folder.FOLDER_VARIABLE: str(planted)})
    try:
        own = _served_folder(server)
        assert own != planted and (own.stat().st_mode & 0o777) == 0o700
        assert _both_workers(server, "/models/tiny-zh") == {200}
        assert sorted(path.name for path in planted.iterdir()) == ["actions.json"]
    finally:
        server.kill()


@pytest.mark.slow
def test_a_path_action_in_the_real_log_has_no_effect_and_a_new_worker_starts(
    store_copy: Path, tmp_path: Path
):
    outside = Path(shutil.copytree(store_copy / "tiny-zh" / "1", tmp_path / "outside" / "1"))
    rewrite_manifest(outside, lambda manifest: manifest.update(name="outside"))
    server = _server(store_copy, tmp_path)
    try:
        own = _served_folder(server)
        entries = [
            {"id": 1, "op": "load", "name": os.path.relpath(outside.parent, store_copy), "version": 1},
            {"id": "2", "op": "unload"},
            {"id": 3, "op": "unload", "name": "tiny-zh"},
        ]
        (own / ".planted").write_text(json.dumps(entries), encoding="utf-8")
        os.replace(own / ".planted", own / "actions.json")
        deadline = time.monotonic() + 30
        while _both_workers(server, "/models/tiny-zh") != {404}:  # the valid action reaches both
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.2)
        models = server.call("GET", "/models").body
        assert "outside" not in json.dumps(models)

        os.kill(_worker_pids(server)[0], signal.SIGKILL)  # its replacement reads the whole log at start
        deadline = time.monotonic() + 60
        while "starting another" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.2)
        server.wait_ready()
        time.sleep(1)
        assert server.process.poll() is None, server.log_text()
        assert _both_workers(server, "/models/tiny-en") == {200}
        assert _both_workers(server, "/models/tiny-zh") == {404}
        errors = [r["message"] for r in server.log_records() if r.get("level") == "ERROR"]
        assert sum("skipping a malformed entry" in message for message in errors) >= 4  # 2 workers + 1
        assert sum("refused to load" in message for message in errors) == 0  # skipped before the registry
    finally:
        server.kill()
