"""What the ONNX graph of every bundle takes and gives, and how close it must stay to the torch model.

Training exports the graph with these names (``training/export.py``) and the service checks them when it
opens a bundle (``service/engine/runtime.py``); both read them from here.
"""

from __future__ import annotations

# ids int64 [batch, seq] (0 after each text's length), lengths int64 [batch] (every length >= 1)
INPUTS = ("ids", "lengths")
# logits [batch, labels]; hidden_states [batch, seq, hidden x directions] (0 at padded steps);
# h_n / c_n [layers x directions, batch, hidden]; embedding_matrix [vocab, embedding_dim]
OUTPUTS = ("logits", "hidden_states", "h_n", "c_n", "embedding_matrix")

# The largest absolute logit difference allowed between torch and onnxruntime (export's parity gate) and
# between the manifest's golden logits and what the served graph computes (the service's load check).
PARITY_TOLERANCE = 1e-4
