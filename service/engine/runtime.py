"""One loaded model: a bundle and its onnxruntime session, created once and then only read.

A :class:`ModelRuntime` is immutable after :meth:`ModelRuntime.open` (but for the embedding matrix, which
only /embed needs: read on first use, under a lock), so any number of threads may run it at once
(``InferenceSession.run`` is thread-safe) and a request keeps the runtime it started with even if the
registry swaps in another version meanwhile. Everything here takes token ids: tokenizing and request
checks happen before (see :mod:`service.engine.preprocess`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from service.bundle import INPUTS, MULTI_LABEL, OUTPUTS, Bundle, BundleError, Manifest
from service.engine import memory
from service.tokenizer import PAD_ID, Tokenizer


def create_session(model_path: str, intra_op_threads: int) -> ort.InferenceSession:
    memory.configure_process()
    options = ort.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")  # the process's shared arena
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # Spinning threads would take the core from the event loop and the other workers while they wait.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; ORT's warnings about unused initialisers are noise here
    return ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])


def pad_batch(id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Id lists → ``ids`` int64 (batch, max_len), 0 after each length, and ``lengths`` int64 (batch,)."""
    if not id_lists:
        raise ValueError("cannot pad an empty batch")
    lengths = np.fromiter((len(ids) for ids in id_lists), dtype=np.int64, count=len(id_lists))
    if int(lengths.min()) < 1:
        raise ValueError("every sequence needs at least one token (the graph requires lengths >= 1)")
    ids = np.full((len(id_lists), int(lengths.max())), PAD_ID, dtype=np.int64)
    for row, token_ids in enumerate(id_lists):
        ids[row, : len(token_ids)] = token_ids
    return ids, lengths


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic of (batch, labels) logits (task multi-label), computed in float64."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (batch, labels) logits (task single-label), computed in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    probabilities: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return probabilities


class Stop:
    """A request to stop work running in a pool thread, made from the event loop when the request's
    deadline passes: onnxruntime ends a run in progress (its ``RunOptions.terminate``), and loops over
    chunks check :attr:`requested` between chunks."""

    def __init__(self) -> None:
        self.run_options = ort.RunOptions()
        self.requested = False

    def request(self) -> None:
        self.requested = True
        self.run_options.terminate = True

    def check(self) -> None:
        if self.requested:
            raise Stopped("stopped: the request's deadline passed")


class Stopped(Exception):
    """Work given up at a :class:`Stop` request (its request was answered 504 already)."""


@dataclass(frozen=True)
class HiddenStates:
    """``per_text[i]``: (num_tokens_i, hidden * directions).

    ``h_n`` / ``c_n``: (layers * directions, batch, hidden), row = layer * directions + direction.
    ``c_n`` is ``None`` for cells without a cell state (GRU, RNN: only the LSTM has one).
    """

    per_text: list[np.ndarray]
    h_n: np.ndarray
    c_n: np.ndarray | None


@dataclass(frozen=True)
class Neighbors:
    """For each query token, the ``k`` nearest vocabulary ids (best first) and their cosine similarities."""

    ids: np.ndarray  # (queries, k) int64
    similarities: np.ndarray  # (queries, k) float32


def cell_of(manifest: Manifest) -> str:
    """The recurrent cell (``lstm``, ``gru``, ``rnn``); bundles from before other cells are LSTMs."""
    return str(manifest.model.get("cell", "lstm"))


def _check_signature(session: ort.InferenceSession, manifest: Manifest) -> None:
    inputs = {node.name: node.type for node in session.get_inputs()}
    if set(inputs) != set(INPUTS) or any(kind != "tensor(int64)" for kind in inputs.values()):
        raise BundleError(f"graph inputs are {inputs}; expected ids and lengths as int64 tensors")
    outputs = {node.name for node in session.get_outputs()}
    # c_n is the LSTM's cell state: a GRU or RNN graph has none
    expected = [name for name in OUTPUTS if name != "c_n" or cell_of(manifest) == "lstm"]
    missing = [name for name in expected if name not in outputs]
    if missing:
        raise BundleError(f"graph lacks the outputs {', '.join(missing)}")


def _check_decision(bundle: Bundle) -> None:
    """A multi-label model needs a threshold for each of its labels (the manifest checks their range)."""
    manifest = bundle.manifest
    if manifest.task == MULTI_LABEL:
        lacking = [label for label in bundle.labels if label not in (manifest.thresholds or {})]
        if lacking:
            raise BundleError(f"multi-label manifest has no threshold for the labels {lacking}")


def _read_embedding_matrix(session: ort.InferenceSession) -> np.ndarray:
    ids, lengths = pad_batch([[PAD_ID]])  # ORT wants every input fed, even for an output that ignores it
    matrix: np.ndarray = session.run(["embedding_matrix"], {"ids": ids, "lengths": lengths})[0]
    return matrix


# Tokens per step of the neighbour search: with a 14,000-word vocabulary, 16 tokens hold about 2.7 MB
# (similarities and partition indices); the matrix product stays as fast per token as with 64.
NEIGHBOR_CHUNK = 16


def _inverse_norms(matrix: np.ndarray) -> np.ndarray:
    """1 / row norm, 0 for all-zero rows (<pad>): cosine similarity without a normalised copy."""
    norms = np.linalg.norm(matrix, axis=1)
    inverse: np.ndarray = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return inverse.astype(np.float32)


class ModelRuntime:
    """A bundle with its session and the embedding matrix, read once at load."""

    def __init__(self, bundle: Bundle, session: ort.InferenceSession, embedding_dim: int) -> None:
        self.bundle = bundle
        self.session = session
        self._embedding_dim = embedding_dim
        # (matrix (vocab, embedding_dim) float32, 1 / row norms (vocab,)), both read-only; None until used.
        self._embedding: tuple[np.ndarray, np.ndarray] | None = None
        self._embedding_lock = threading.Lock()

    @classmethod
    def open(cls, bundle: Bundle, intra_op_threads: int = 1) -> ModelRuntime:
        """Create the session, check the graph's inputs and outputs, and read the embedding matrix."""
        _check_decision(bundle)
        session = create_session(str(bundle.model_path), intra_op_threads)
        _check_signature(session, bundle.manifest)
        matrix = _read_embedding_matrix(session)
        vocab_size = bundle.tokenizer.vocab_size
        if matrix.ndim != 2 or matrix.shape[0] != vocab_size:
            raise BundleError(
                f"embedding_matrix has shape {list(matrix.shape)} but the vocabulary has {vocab_size} entries"
            )
        # Checked now, kept only once /embed asks: a worker that only classifies saves vocab x dim floats.
        return cls(bundle, session, int(matrix.shape[1]))

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> int:
        return self.bundle.version

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    @property
    def tokenizer(self) -> Tokenizer:
        return self.bundle.tokenizer

    @property
    def manifest(self) -> Manifest:
        return self.bundle.manifest

    @property
    def batch_invariant(self) -> bool:
        """False for graphs whose scores depend on the batch (int8: per-batch activation scales)."""
        return self.manifest.batch_invariant

    @property
    def embedding_dim(self) -> int:
        return self._embedding_dim

    @property
    def embedding_matrix(self) -> np.ndarray:
        """(vocab, embedding_dim) float32, read-only: the vectors the graph looks up (read on first use)."""
        return self._embedding_arrays()[0]

    def _embedding_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        loaded = self._embedding
        if loaded is None:
            with self._embedding_lock:
                if self._embedding is None:
                    matrix = np.ascontiguousarray(_read_embedding_matrix(self.session), dtype=np.float32)
                    inverse_norms = _inverse_norms(matrix)
                    matrix.flags.writeable = False
                    inverse_norms.flags.writeable = False
                    self._embedding = (matrix, inverse_norms)
                loaded = self._embedding
        return loaded

    def shrink_arena(self) -> None:
        """One tiny run that releases the arena chunks earlier (load-time) runs left unused."""
        ids, lengths = pad_batch([[PAD_ID]])
        self.session.run(["logits"], {"ids": ids, "lengths": lengths}, memory.SHRINK_ARENA)

    def _run(
        self, outputs: list[str], id_lists: Sequence[Sequence[int]], stop: Stop | None = None
    ) -> list[np.ndarray]:
        ids, lengths = pad_batch(id_lists)
        options = stop.run_options if stop is not None else None
        try:
            arrays: list[np.ndarray] = self.session.run(outputs, {"ids": ids, "lengths": lengths}, options)
        except Exception:
            if stop is not None:
                stop.check()  # onnxruntime's own error for a terminated run, told apart
            raise
        return arrays

    def logits(self, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """(batch, labels) float32 raw scores."""
        return self._run(["logits"], id_lists)[0]

    def classify(self, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """(batch, labels) scores (see :meth:`scores`) in one model call, outside any batcher: for tools
        and tests that hold a runtime; requests go through :class:`service.engine.engine.Engine`."""
        return self.scores(self.logits(id_lists))

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def multi_label(self) -> bool:
        """One sigmoid per label, each label decided by its own threshold (else one softmax)."""
        return self.manifest.task == MULTI_LABEL

    def output_shape(self, output: str) -> list[int]:
        """The graph's shape of one of its outputs, -1 where a dimension is symbolic ("batch")."""
        node = next(node for node in self.session.get_outputs() if node.name == output)
        return [value if isinstance(value, int) else -1 for value in node.shape]

    @property
    def hidden_width(self) -> int:
        """Floats per token of the hidden_states output (hidden size x directions)."""
        width = self.output_shape("hidden_states")[-1]
        return width if width > 0 else 2 * self.embedding_dim  # a symbolic width: the usual size

    @property
    def cell(self) -> str:
        return cell_of(self.manifest)

    @property
    def has_cell_state(self) -> bool:
        """Only an LSTM graph has ``c_n``."""
        return self.cell == "lstm"

    @property
    def temperature(self) -> float:
        """Single-label probabilities are softmax(logits / T); T = 1 unless the bundle was calibrated."""
        calibration = self.manifest.calibration
        return float(calibration["temperature"]) if calibration else 1.0

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Logits → what the model's task calls scores: one sigmoid per label (multi-label), or the softmax
        of the logits divided by the bundle's calibration temperature (single-label)."""
        if self.multi_label:
            return sigmoid(logits)
        temperature = self.temperature
        return softmax(logits if temperature == 1.0 else logits / temperature)

    def best_labels(self, scores: np.ndarray) -> list[int]:
        """Per text, the index of the answer's ``label``: the best score (the first on ties); for a
        multi-label model the best of the labels over their thresholds, -1 when none is."""
        if not self.multi_label:
            return np.argmax(scores, axis=1).tolist()  # type: ignore[no-any-return]
        return [decided[0] if decided else -1 for decided in self.decide(scores)]

    def decide(self, scores: np.ndarray) -> list[list[int]]:
        """Multi-label: per text, the indices of the labels whose score reaches their threshold, best
        first (possibly none)."""
        thresholds = self.manifest.thresholds or {}
        limits = np.asarray([thresholds[label] for label in self.labels], dtype=np.float64)
        decided = []
        for row in scores:
            over = np.flatnonzero(row >= limits)
            decided.append(over[np.argsort(-row[over], kind="stable")].tolist())
        return decided

    def hidden_states(self, id_lists: Sequence[Sequence[int]], stop: Stop | None = None) -> HiddenStates:
        """The top recurrent layer's output at every real step of each text, the final h_n, and for an LSTM
        the final c_n (``None`` for cells without a cell state)."""
        if not self.has_cell_state:
            states, h_n = self._run(["hidden_states", "h_n"], id_lists, stop)
            c_n = None
        else:
            states, h_n, c_n = self._run(["hidden_states", "h_n", "c_n"], id_lists, stop)
        per_text = [states[row, : len(token_ids)] for row, token_ids in enumerate(id_lists)]
        return HiddenStates(per_text, h_n, c_n)

    def embeddings(self, token_ids: Sequence[int]) -> np.ndarray:
        """(tokens, embedding_dim) float32: the rows of the embedding matrix the model looks up."""
        return self.embedding_matrix[np.asarray(token_ids, dtype=np.int64)]

    def neighbors(self, token_ids: Sequence[int], k: int, stop: Stop | None = None) -> Neighbors:
        """The ``k`` nearest vocabulary entries of each token by cosine similarity (not <pad>, not itself).

        Each distinct token is searched once (a text repeats its words), in chunks of
        :data:`NEIGHBOR_CHUNK` tokens, checking ``stop`` between chunks: the search holds a (tokens,
        vocabulary) similarity matrix and its partition indices, 12 bytes per pair (101 MB for 600 tokens
        and 14,000 words)."""
        distinct, positions = np.unique(np.asarray(token_ids, dtype=np.int64), return_inverse=True)
        parts = []
        for start in range(0, len(distinct), NEIGHBOR_CHUNK):
            if stop is not None:
                stop.check()
            parts.append(self._neighbors_of(distinct[start : start + NEIGHBOR_CHUNK], k))
        if not parts:
            empty = np.empty((0, 0))
            return Neighbors(empty.astype(np.int64), empty.astype(np.float32))
        ids = np.concatenate([part.ids for part in parts])
        similarities = np.concatenate([part.similarities for part in parts])
        return Neighbors(ids[positions], similarities[positions])

    def _neighbors_of(self, queries: np.ndarray, k: int) -> Neighbors:
        """:meth:`neighbors` of at most :data:`NEIGHBOR_CHUNK` distinct tokens."""
        matrix, inverse_norms = self._embedding_arrays()
        similarity = (matrix[queries] @ matrix.T) * inverse_norms  # (queries, vocab)
        similarity *= inverse_norms[queries][:, None]
        similarity[:, PAD_ID] = -np.inf
        similarity[np.arange(len(queries)), queries] = -np.inf
        k = max(0, min(k, similarity.shape[1] - 2))
        if k == 0:
            empty = np.empty((len(queries), 0))
            return Neighbors(empty.astype(np.int64), empty.astype(np.float32))
        candidates = np.argpartition(similarity, -k, axis=1)[:, -k:]  # the k largest, in no order
        candidate_scores = np.take_along_axis(similarity, candidates, axis=1)
        order = np.argsort(-candidate_scores, axis=1, kind="stable")
        best = np.take_along_axis(candidates, order, axis=1)
        return Neighbors(best, np.take_along_axis(similarity, best, axis=1).astype(np.float32))
