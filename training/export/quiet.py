"""Silencing the known-harmless messages torch and onnxruntime print on every export, and nothing else.

- torch's ONNX exporter prints "The shape inference of prim::PackPadded type is missing" (and the same
  for prim::PadPacked) from C++ straight to the process's stderr, bypassing Python's ``warnings``: the
  exporter turns the packing into the recurrent node's ``sequence_lens`` input, so those intermediate
  nodes never reach the written graph, which :func:`training.export.graph.check_graph` and the parity gate
  (the graph's logits against torch's) check on every export.
- onnxruntime's ``quantize_dynamic`` logs "Please consider to run pre-processing before quantization"
  and one "Quantization parameters for tensor ... not specified" line per tensor on the root logger:
  pre-processing (shape inference and graph optimisation) matters for static quantization of CNNs, not
  for the dynamic quantization used here, whose accuracy is measured and recorded in the manifest.

Any other line passes through unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

TORCH_EXPORT_NOISE = ("shape inference of prim::PackPadded", "shape inference of prim::PadPacked")
ORT_QUANTIZATION_NOISE = (
    "Please consider to run pre-processing before quantization",
    "Quantization parameters for tensor",
)


@contextlib.contextmanager
def native_stderr_without(fragments: tuple[str, ...]) -> Iterator[None]:
    """Capture the process's stderr (file descriptor 2, where C++ writes) while the block runs, then write
    back every line that contains none of ``fragments``."""
    descriptor = 2  # the C++ side writes to the file descriptor, whatever sys.stderr is
    sys.stderr.flush()
    saved = os.dup(descriptor)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), descriptor)
        try:
            yield
        finally:
            os.dup2(saved, descriptor)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().splitlines(keepends=True)
                if not any(fragment.encode() in line for fragment in fragments)
            ]
            if kept:
                os.write(descriptor, b"".join(kept))


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


@contextlib.contextmanager
def root_log_without(fragments: tuple[str, ...]) -> Iterator[None]:
    """Drop records logged on the root logger whose message contains one of ``fragments``."""
    dropping = _DropMessages(fragments)
    root = logging.getLogger()
    root.addFilter(dropping)
    try:
        yield
    finally:
        root.removeFilter(dropping)
