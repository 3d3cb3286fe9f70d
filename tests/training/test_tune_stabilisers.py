"""The stabilising options a search can pick, each checked against its definition: label smoothing
(single- and multi-label), an exponential moving average of the weights (scored on dev, kept, resumed
exactly), and word2vec on unlabelled text (``--pretrain-text``) under the tokenizer's vocabulary rules."""

from __future__ import annotations

import pytest
import torch
from support.data import tiny_examples, write_csv
from torch import nn

from training.cli import main
from training.cli.pipeline import build_tokenizer, fit
from training.data.reading import Example
from training.data.splits import make_splits
from training.loop.averaging import WeightAverage
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.loop.objectives import Objective
from training.loop.trainer import LAST, load_checkpoint
from training.model import unlabelled
from training.model.classifier import ModelConfig


@pytest.fixture(scope="module")
def splits(tiny_dataset):
    return make_splits([Example(text, label) for text, label in tiny_dataset("en", per_label=20)], seed=0)


def test_label_smoothing_spreads_the_target_over_the_other_labels() -> None:
    torch.manual_seed(0)
    logits, targets, smoothing = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0]), 0.2
    log_p = torch.log_softmax(logits, dim=1)
    hard = -log_p[torch.arange(6), targets]
    expected = ((1 - smoothing) * hard + smoothing * -log_p.mean(dim=1)).mean()
    loss = Objective(label_smoothing=smoothing).loss()(logits, targets)
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(Objective().loss()(logits, targets), expected)


def test_multi_label_smoothing_pulls_each_target_towards_one_half() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 4), torch.randint(0, 2, (5, 4)).float()
    smoothed = targets * 0.9 + 0.05  # smoothing 0.1: 1 -> 0.95, 0 -> 0.05
    probabilities = torch.sigmoid(logits)
    expected = -(smoothed * probabilities.log() + (1 - smoothed) * (1 - probabilities).log()).mean()
    loss = Objective(task="multi-label", label_smoothing=0.1).loss()(logits, targets)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("field", ["label_smoothing", "ema_decay"])
def test_smoothing_and_decay_of_one_or_more_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrainSettings(**{field: 1.0})


def test_the_moving_average_follows_its_formula_with_the_warm_up() -> None:
    layer = nn.Linear(2, 1)
    start = layer.weight.detach().clone()
    average = WeightAverage(layer, decay=0.9)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average.update(layer)  # first update: decay min(0.9, 2/11)
    expected = start * (2 / 11) + 1.0 * (9 / 11)
    torch.testing.assert_close(average.shadow["weight"], expected)
    for _ in range(200):
        average.update(layer)
    torch.testing.assert_close(average.shadow["weight"], torch.ones_like(start), atol=1e-6, rtol=0)
    own = average.swap_in(layer)
    torch.testing.assert_close(layer.weight.detach(), average.shadow["weight"])
    layer.load_state_dict(own)
    assert torch.equal(layer.weight.detach(), torch.ones_like(start))


def _fit(splits, run_dir, epochs, resume=False, ema_decay=0.9):
    return fit(
        splits,
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(embedding_dim=8, hidden_dim=8),
        training=TrainSettings(
            epochs=epochs, batch_size=8, learning_rate=1e-2, patience=10, seed=4, ema_decay=ema_decay
        ),
        run_dir=run_dir,
        resume=resume,
    )


def test_the_averaged_weights_are_scored_on_dev_and_kept(splits, tmp_path) -> None:
    fitted = _fit(splits, tmp_path / "run", epochs=1)
    checkpoint = load_checkpoint(tmp_path / "run" / LAST)
    shadow, raw = checkpoint["average_state"]["shadow"], checkpoint["model_state"]
    assert any(not torch.equal(shadow[key], raw[key]) for key in shadow)
    for key, value in shadow.items():  # epoch 1 is the best: the kept weights are the average
        torch.testing.assert_close(fitted.model.state_dict()[key], value, atol=0, rtol=0)
        torch.testing.assert_close(checkpoint["best_state"][key], value, atol=0, rtol=0)
    plain = _fit(splits, tmp_path / "plain", epochs=1, ema_decay=0.0)
    assert "average_state" not in load_checkpoint(tmp_path / "plain" / LAST)
    assert not torch.equal(plain.model.embedding.weight, fitted.model.embedding.weight)


def test_a_resumed_run_with_an_average_continues_exactly(splits, tmp_path) -> None:
    straight = _fit(splits, tmp_path / "straight", epochs=3)
    _fit(splits, tmp_path / "interrupted", epochs=2)
    resumed = _fit(splits, tmp_path / "interrupted", epochs=3, resume=True)

    def timeless(history):
        return [{key: value for key, value in row.items() if key != "seconds"} for row in history]

    assert timeless(resumed.record.history) == timeless(straight.record.history)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=0, rtol=0)


def test_unlabelled_text_is_streamed_under_the_tokenizer_rules(splits, tmp_path) -> None:
    tokenizer = build_tokenizer(
        TokenizerSettings(max_length=32, max_vocab=None), [e.text for e in splits.train]
    )
    extra = tmp_path / "unlabelled.txt"
    extra.write_text("The CHEF made Soup\n\nzebra quokka soup\n", encoding="utf-8")
    train_tokens = [tokenizer.keys(e.text) for e in splits.train]
    corpus = unlabelled.Corpus(tokenizer, train_tokens, [str(extra)])
    passes = [list(corpus), list(corpus)]  # restartable: word2vec reads it once per epoch
    assert passes[0] == passes[1] and corpus.lines == 2  # the empty line is skipped
    assert passes[0][-2:] == [["the", "chef", "made", "soup"], ["zebra", "quokka", "soup"]]  # lower-cased
    vectors = unlabelled.train_vectors(corpus, dim=8, seed=1, epochs=1)
    assert "soup" in vectors.key_to_index
    assert "zebra" not in vectors.key_to_index  # not in the training split's vocabulary: no vector
    assert set(vectors.key_to_index) <= set(tokenizer.vocabulary)


def test_fit_with_pretrain_text_reports_what_it_read(splits, tmp_path) -> None:
    extra = tmp_path / "unlabelled.txt"
    extra.write_text(
        "\n".join(text for text, _ in tiny_examples("en", per_label=30, seed=7)), encoding="utf-8"
    )
    fitted = fit(
        splits,
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(embedding_dim=8, hidden_dim=8),
        training=TrainSettings(epochs=1, batch_size=8, seed=4),
        pretrained=PretrainedSettings(source="train", epochs=1, texts=(str(extra),)),
    )
    report = fitted.record.pretrained
    assert report["unlabelled_texts"] == 90 and str(extra) in report["source"]
    assert report["coverage"] > 0.9


def test_pretrain_text_without_word2vec_training_is_refused(tmp_path, caplog) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=10))
    extra = tmp_path / "unlabelled.txt"
    extra.write_text("soup\n", encoding="utf-8")
    store = tmp_path / "store"
    argv = [
        "train",
        "--data",
        str(data),
        "--name",
        "x",
        "--store",
        str(store),
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--pretrain-text", str(extra)]) == 2
    assert "--pretrain-text" in caplog.text and "--w2v train" in caplog.text
    assert not (store / "x").exists()
    assert main([*argv, "--w2v", "train", "--pretrain-text", str(tmp_path / "no.txt")]) == 2
    assert "no such file" in caplog.text
