"""Checkpoints: state_dict + plain config, loaded with weights_only=True, written atomically, resumable."""

from __future__ import annotations

import pytest
import torch

from training.data import Example, make_splits
from training.pipeline import ModelSettings, PretrainedSettings, TokenizerSettings, fit
from training.trainer import BEST, LAST, TrainSettings, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def splits(tiny_dataset):
    return make_splits([Example(text, label) for text, label in tiny_dataset("en", per_label=20)], seed=0)


def _fit(splits, run_dir, epochs, resume=False, pretrained=None):
    return fit(
        splits,
        TokenizerSettings(max_length=32, max_vocab=None),
        ModelSettings(embedding_dim=8, hidden_dim=8),
        TrainSettings(epochs=epochs, batch_size=8, learning_rate=1e-2, patience=10, seed=4, lr_decay=0.5),
        pretrained=pretrained,
        run_dir=run_dir,
        resume=resume,
    )


@pytest.mark.parametrize(
    "pretrained", [None, PretrainedSettings("train", "frozen", epochs=1)], ids=["random-init", "w2v-frozen"]
)
def test_resume_continues_exactly_where_the_interrupted_run_stopped(splits, tmp_path, pretrained):
    straight = _fit(splits, tmp_path / "straight", epochs=4, pretrained=pretrained)
    _fit(splits, tmp_path / "interrupted", epochs=2, pretrained=pretrained)  # "crashed" after epoch 2
    resumed = _fit(splits, tmp_path / "interrupted", epochs=4, resume=True, pretrained=pretrained)
    assert resumed.model.embedding.weight.requires_grad == (pretrained is None)
    assert resumed.info["pretrained"] == straight.info["pretrained"]
    assert [e["epoch"] for e in resumed.info["history"]] == [1, 2, 3, 4]
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=0, rtol=0)
    assert resumed.info["history"][-1]["train_loss"] == straight.info["history"][-1]["train_loss"]


def test_checkpoints_hold_plain_data_and_load_with_weights_only(splits, tmp_path):
    _fit(splits, tmp_path, epochs=2)
    for name in (LAST, BEST):
        payload = torch.load(tmp_path / name, weights_only=True)  # raises on pickled objects
        assert set(payload["config"]) >= {"model", "tokenizer", "labels"}
        assert payload["config"]["tokenizer"]["vocabulary"][:2] == ["<pad>", "<unk>"]
        assert all(isinstance(v, torch.Tensor) for v in payload["model_state"].values())
    assert load_checkpoint(tmp_path / LAST)["epoch"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_resume_without_a_checkpoint_or_with_other_settings_is_refused(splits, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        _fit(splits, tmp_path / "empty", epochs=2, resume=True)
    _fit(splits, tmp_path / "run", epochs=1)
    with pytest.raises(ValueError, match="settings differ"):
        fit(
            splits,
            TokenizerSettings(max_length=32, max_vocab=None),
            ModelSettings(embedding_dim=8, hidden_dim=8),
            TrainSettings(epochs=3, batch_size=16, seed=4),
            run_dir=tmp_path / "run",
            resume=True,
        )


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"format": 1, "epoch": 1})

    def broken_save(obj, target):
        target.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"format": 1, "epoch": 2})
    assert load_checkpoint(path)["epoch"] == 1
