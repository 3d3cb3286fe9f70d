"""Where requests meet the model: CPU work runs off the event loop, within the request's deadline.

Routes never call a runtime directly; they await :class:`Inference`. :meth:`Inference.classify` is the one
call site for classification, so a dynamic micro-batcher (``service/batching.py``) can take it over
without touching a route. A bounded thread pool (``inference_threads``) caps how many model calls run at
once; onnxruntime releases the GIL, so the event loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from service.context import seconds_left
from service.errors import DeadlineExceeded
from service.preprocess import encode_texts
from service.runtime import HiddenStates, ModelRuntime, Neighbors
from service.tokenizer import Encoding

T = TypeVar("T")

# Tokenizing a few short texts costs less than a hop to a thread and back; beyond this, leave the loop.
_INLINE_TOKENIZE_CHARS = 2_000


class Inference:
    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")

    async def run(self, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``function(*args, **kwargs)`` in the pool; 504 if the request's deadline passes first."""
        remaining = seconds_left()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the request ran out of time before inference started")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, remaining)
        except asyncio.TimeoutError:
            raise DeadlineExceeded("the request did not finish within its deadline") from None

    async def encode(
        self,
        runtime: ModelRuntime,
        texts: Sequence[str],
        locations: Sequence[str],
        truncate: bool,
        require_tokens: bool,
    ) -> list[Encoding]:
        """Tokenize (inline when the texts are short, else in the pool); see :func:`encode_texts`."""
        if sum(map(len, texts)) <= _INLINE_TOKENIZE_CHARS:
            return encode_texts(runtime, texts, locations, truncate, require_tokens)
        return await self.run(encode_texts, runtime, texts, locations, truncate, require_tokens)

    async def classify(self, runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """(texts, labels) probabilities; the call site a micro-batcher plugs into."""
        return await self.run(runtime.classify, id_lists)

    async def hidden_states(self, runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]) -> HiddenStates:
        return await self.run(runtime.hidden_states, id_lists)

    async def neighbors(self, runtime: ModelRuntime, token_ids: Sequence[int], k: int) -> Neighbors:
        return await self.run(runtime.neighbors, token_ids, k)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
