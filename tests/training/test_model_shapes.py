"""The classifier: shapes, independent embedding/hidden sizes, padding invariance, parameter counts."""

from __future__ import annotations

import pytest
import torch

from training.loop.batches import pad
from training.model.classifier import LSTMClassifier, ModelConfig
from training.model.summary import parameter_summary

TEXTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17], [18]]


def _model(**settings) -> LSTMClassifier:
    torch.manual_seed(0)
    defaults = {"vocab_size": 30, "num_labels": 3, "embedding_dim": 12, "hidden_dim": 8}
    return LSTMClassifier(ModelConfig(**{**defaults, **settings})).eval()


def test_two_bidirectional_layers_with_embedding_dim_not_hidden_dim():
    model = _model(embedding_dim=20, hidden_dim=6, num_layers=2, bidirectional=True)
    ids, lengths = pad(TEXTS)
    logits, hidden, h_n, c_n, embedding = model(ids, lengths)
    assert logits.shape == (4, 3)
    assert hidden.shape == (4, 7, 12)  # (batch, seq, hidden × 2 directions)
    assert h_n.shape == c_n.shape == (4, 4, 6)  # (layers × directions, batch, hidden)
    assert embedding.shape == (30, 20)
    assert model.lstm.weight_ih_l1.shape == (
        4 * 6,
        12,
    )  # layer 2 reads hidden × directions, not embedding_dim


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_never_changes_a_result(pooling, bidirectional):
    model = _model(pooling=pooling, bidirectional=bidirectional, num_layers=2)
    ids, lengths = pad(TEXTS)
    with torch.no_grad():
        batched = model(ids, lengths)
        for row, text in enumerate(TEXTS):
            alone = model(*pad([text]))
            torch.testing.assert_close(batched[0][row], alone[0][0], atol=1e-6, rtol=0)
            torch.testing.assert_close(batched[1][row, : len(text)], alone[1][0], atol=1e-6, rtol=0)
            torch.testing.assert_close(batched[2][:, row], alone[2][:, 0], atol=1e-6, rtol=0)
            assert torch.all(batched[1][row, len(text) :] == 0)  # exactly zero at padded steps


def test_extra_padding_columns_change_nothing():
    model = _model()
    ids, lengths = pad(TEXTS)
    wider = torch.cat([ids, torch.zeros(4, 5, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, lengths)[0], model(wider, lengths)[0], atol=1e-6, rtol=0)


def test_max_pooling_masks_padding_even_when_all_activations_are_negative():
    model = _model(pooling="max", bidirectional=False)
    with torch.no_grad():
        model.lstm.bias_ih_l0.fill_(-50.0)  # output gate closed, cell negative → hidden states < 0
        ids, lengths = pad(TEXTS)
        hidden = model(ids, lengths)[1]
        assert hidden[0, :7].max() < 0
        pooled = model._pool(hidden, model(ids, lengths)[2], lengths)
        assert torch.all(pooled < 0)  # a padded 0 never wins the max


def test_parameter_summary_spells_out_the_lstm_formula():
    model = _model(embedding_dim=20, hidden_dim=6, num_layers=2, bidirectional=True)
    summary = parameter_summary(model)
    assert summary["total"] == sum(p.numel() for p in model.parameters())
    first, second = summary["recurrent_layers"]
    assert first["textbook_per_direction"] == 4 * (20 + 6 + 1) * 6
    assert first["pytorch_per_direction"] == 4 * (20 + 6 + 2) * 6
    assert second["input_dim"] == 12
    assert summary["per_layer"]["lstm"] == 2 * (4 * (20 + 6 + 2) * 6 + 4 * (12 + 6 + 2) * 6)
    assert "4 × (input + hidden + 1) × hidden" in summary["recurrent_formula"]


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        ModelConfig(vocab_size=10, num_labels=2, pooling="attention")
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(vocab_size=10, num_labels=2, dropout=1.5)


@pytest.mark.parametrize(
    ("pooling", "bidirectional", "layers"),
    [("max", True, 2), ("mean", True, 1), ("last", True, 2), ("last", False, 2), ("max", False, 1)],
)
def test_training_forward_equals_the_packed_forward_that_is_exported(pooling, bidirectional, layers):
    model = _model(pooling=pooling, bidirectional=bidirectional, num_layers=layers)
    ids, lengths = pad(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_train(ids, lengths), model(ids, lengths)[0], atol=1e-6, rtol=0
        )


def test_training_forward_gradients_match_the_packed_forward():
    model = _model(pooling="max", bidirectional=True, num_layers=2)
    ids, lengths = pad(TEXTS)
    model.forward_train(ids, lengths).sum().backward()
    fast = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(ids, lengths)[0].sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(fast[name], parameter.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("length_pool", [1, 50])
def test_batches_cover_every_text_once_and_pools_sort_by_length(length_pool):
    from training.loop.batches import batch_indices

    lengths = [(index * 37) % 101 + 1 for index in range(300)]
    batches = list(batch_indices(lengths, 16, shuffle=True, seed=2, length_pool=length_pool))
    assert sorted(int(i) for batch in batches for i in batch) == list(range(300))
    spread = max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:-1])
    assert (spread < 30) if length_pool == 50 else (spread > 50)
    again = batch_indices(lengths, 16, shuffle=True, seed=2, length_pool=length_pool)
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]
