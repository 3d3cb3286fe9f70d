"""Closing a listening socket without resetting the connections in its accept queue.

Closing a listener resets (RST) every connection the kernel completed but nobody accepted yet: clients
that kept sending past the drain window saw 3-8 connection resets per shutdown. Instead, before the close:

1. :func:`refuse_new_connections` attaches a socket filter that drops every packet reaching the listener
   (Linux ``SO_ATTACH_FILTER``, a one-instruction classic BPF program: ``ret 0``). New SYNs go
   unanswered; their clients retry the SYN and get "connection refused" once the listener is closed, the
   clean refusal a client expects from a stopped server. Connections already accepted are other sockets
   and never see the filter.
2. The server keeps accepting for :data:`ACCEPT_QUEUE_SECONDS`: the event loop takes what the queue holds,
   and those requests are answered (with ``Connection: close``, as every request during shutdown).
3. Only then is the listener closed, with an empty queue.

Where the filter cannot be attached (not Linux), the listener closes as before.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import sys
from typing import Any

logger = logging.getLogger(__name__)

ACCEPT_QUEUE_SECONDS = 0.25  # the event loop empties the queue in one pass; the rest is margin for load
_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k (the bytes of the packet to keep: 0 = drop)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_new_connections(listener: Any) -> bool:
    """Drop every packet that reaches ``listener`` (a socket, or asyncio's wrapper of one) from now on;
    whether the filter is attached."""
    if not sys.platform.startswith("linux"):
        return False
    drop = (_SockFilter * 1)(_SockFilter(_BPF_RET_K, 0, 0, 0))
    program = _SockFprog(1, ctypes.cast(drop, ctypes.POINTER(_SockFilter)))
    try:  # the kernel copies the program during the call; `drop` lives until it returns
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))
    except OSError as error:
        logger.warning("could not stop new connections before closing the listener: %s", error)
        return False
    return True
