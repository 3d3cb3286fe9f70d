"""Checkpoints: state_dict + plain config, loaded with weights_only=True, written atomically, resumable."""

from __future__ import annotations

import pytest
import torch

from training.cli.pipeline import fit
from training.data.reading import Example
from training.data.splits import make_splits
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.loop.trainer import BEST, LAST, load_checkpoint, load_checkpoint_model, save_checkpoint
from training.model.classifier import ModelConfig


@pytest.fixture(scope="module")
def splits(tiny_dataset):
    return make_splits([Example(text, label) for text, label in tiny_dataset("en", per_label=20)], seed=0)


def _fit(splits, run_dir, epochs, resume=False, pretrained=None, patience=10):
    return fit(
        splits,
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(embedding_dim=8, hidden_dim=8),
        training=TrainSettings(
            epochs=epochs, batch_size=8, learning_rate=1e-2, patience=patience, seed=4, lr_decay=0.5
        ),
        pretrained=pretrained,
        run_dir=run_dir,
        resume=resume,
    )


@pytest.mark.parametrize(
    "pretrained",
    [None, PretrainedSettings(source="train", mode="frozen", epochs=1)],
    ids=["random-init", "w2v-frozen"],
)
def test_resume_continues_exactly_where_the_interrupted_run_stopped(splits, tmp_path, pretrained):
    straight = _fit(splits, tmp_path / "straight", epochs=4, pretrained=pretrained)
    _fit(splits, tmp_path / "interrupted", epochs=2, pretrained=pretrained)  # "crashed" after epoch 2
    resumed = _fit(splits, tmp_path / "interrupted", epochs=4, resume=True, pretrained=pretrained)
    assert resumed.model.embedding.weight.requires_grad == (pretrained is None)
    assert resumed.record.pretrained == straight.record.pretrained
    assert [e["epoch"] for e in resumed.record.history] == [1, 2, 3, 4]
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=0, rtol=0)
    assert resumed.record.history[-1]["train_loss"] == straight.record.history[-1]["train_loss"]


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
    with pytest.raises(ValueError, match="other settings or data: training batch_size: 8 → 16"):
        fit(
            splits,
            tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
            model=ModelConfig(embedding_dim=8, hidden_dim=8),
            training=TrainSettings(epochs=3, batch_size=16, seed=4),
            run_dir=tmp_path / "run",
            resume=True,
        )


def test_early_stopping_ends_the_run_patience_epochs_after_the_best_and_keeps_the_best(splits, tmp_path):
    fitted = _fit(splits, tmp_path, epochs=40, patience=2)
    record = fitted.record
    assert record.stopped_early and record.epochs_run < 40
    assert record.epochs_run == record.best_epoch + 2
    dev_accuracy = [epoch["dev_accuracy"] for epoch in record.history]
    assert record.best_dev_accuracy == max(dev_accuracy)
    assert dev_accuracy.index(max(dev_accuracy)) == record.best_epoch - 1  # the first epoch that reached it
    # the model and best.pt hold the best epoch's weights, not the last epoch's
    loaded = load_checkpoint_model(tmp_path)
    assert loaded.payload["epoch"] == record.best_epoch
    for key, value in fitted.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value, atol=0, rtol=0)


def test_settings_are_keyword_only():
    with pytest.raises(TypeError):
        TrainSettings(3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        TokenizerSettings("word")  # type: ignore[misc]
    with pytest.raises(TypeError):
        ModelConfig(10, 2)  # type: ignore[misc]


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
