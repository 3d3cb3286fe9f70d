"""``torchrun --nproc-per-node 2`` on the CPU (gloo) trains a tiny model: it completes, every rank ends
with the same parameters, rank 0 alone writes a bundle that the service loads and serves, and an
interrupted run resumes from its checkpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.apps import running_app
from support.data import tiny_examples, write_csv

pytestmark = [pytest.mark.train, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _torchrun(tmp_path: Path, data: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "training.cli", "train", "--data", str(data), "--name", "tiny-ddp"]
    command += ["--store", str(tmp_path / "store"), "--run-dir", str(tmp_path / "run"), "--split-seed", "0"]
    command += ["--embedding-dim", "8", "--hidden-dim", "8", "--max-length", "32", "--batch-size", "16"]
    command += ["--epochs", str(epochs), "--patience", "5", "--lr", "0.01", "--threads", "1"]
    command += ["--no-baseline", "--no-progress", "--allow-weak", *extra]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def _ranks(run: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(run.glob("rank-*.json"))]


def test_two_cpu_processes_train_identical_parameters_and_rank_0_writes_a_served_bundle(
    tmp_path: Path,
) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=24))

    first = _torchrun(tmp_path, data, epochs=1)
    assert first.returncode == 0, first.stderr[-4000:]
    ranks = _ranks(tmp_path / "run")
    assert [rank["rank"] for rank in ranks] == [0, 1] and {rank["world_size"] for rank in ranks} == {2}
    assert ranks[0]["parameters_sha256"] == ranks[1]["parameters_sha256"]
    # each rank trained on its own half of the training texts
    assert ranks[0]["training_texts_seen"] + ranks[1]["training_texts_seen"] >= ranks[0]["training_texts"]
    assert ranks[0]["training_texts_seen"] < ranks[0]["training_texts"]

    # interrupted after epoch 1: the second launch resumes and runs epoch 2 only
    second = _torchrun(tmp_path, data, 2, "--resume")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "resumed from" in second.stderr
    ranks = _ranks(tmp_path / "run")
    assert ranks[0]["parameters_sha256"] == ranks[1]["parameters_sha256"]
    assert ranks[0]["epochs_run"] == 2

    bundles = sorted((tmp_path / "store" / "tiny-ddp").iterdir())
    assert [bundle.name for bundle in bundles] == ["1", "2"]  # one per launch, by rank 0 alone
    manifest = json.loads((bundles[-1] / "manifest.json").read_text())
    assert manifest["training"]["distributed"]["world_size"] == 2

    answer = asyncio.run(_classify(tmp_path / "store", "the chef made soup"))
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["results"][0]["scores"]) == {"food", "sport", "tech"}


async def _classify(store: Path, text: str) -> httpx.Response:
    from service.settings import Settings

    async with running_app(Settings(model_store=store)) as client:
        return await client.post("/classify", json={"model": "tiny-ddp", "text": text})


def test_more_processes_than_training_texts_are_refused() -> None:
    from training.loop.distributed import Distributed, check_size

    check_size(Distributed(rank=0, world_size=4), 4)
    with pytest.raises(ValueError, match="4 processes but only 3 training texts"):
        check_size(Distributed(rank=1, world_size=4), 3)
