"""Closing a listening socket without resetting the connections in its accept queue.

Closing a listener resets (RST) every connection the kernel completed but nobody accepted yet: clients
that kept sending past the drain window saw 3-8 connection resets per shutdown. Instead, before the close:

1. :func:`refuse_new_connections` attaches a socket filter that drops every SYN reaching the listener
   (Linux ``SO_ATTACH_FILTER``, a classic BPF program: load the TCP flags byte, drop the packet if SYN is
   set, keep it otherwise). New SYNs go unanswered; their clients retry the SYN and get "connection
   refused" once the listener is closed, the clean refusal a client expects from a stopped server. A
   handshake already under way still completes (its last ACK is not a SYN; a filter that dropped every
   packet left such a connection half-open, to be reset at the close), and connections already accepted
   are other sockets that never see the filter.
2. The server keeps accepting until the kernel says the accept queue is empty (:func:`accept_queue`,
   ``TCP_INFO`` of the listener), at least :data:`ACCEPT_QUEUE_SECONDS` and at most
   :data:`ACCEPT_QUEUE_MAX_SECONDS` on a loaded machine: the event loop takes what the queue holds, and
   those requests are answered (with ``Connection: close``, as every request during shutdown).
3. Only then is the listener closed, with an empty queue.

Where the filter cannot be attached (not Linux), the listener closes as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import sys
import time
from typing import Any

logger = logging.getLogger(__name__)

ACCEPT_QUEUE_SECONDS = 0.1  # the least time the listener stays open after the filter
ACCEPT_QUEUE_MAX_SECONDS = 3.0  # the most it waits for its accept queue to empty (a starved event loop)
_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
# Classic BPF (<linux/filter.h>); a TCP socket's filter sees the packet from its TCP header on.
_BPF_LD_B_ABS = 0x30  # BPF_LD | BPF_B | BPF_ABS: A = the byte at offset k
_BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K: if A & k, skip jt instructions, else jf
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k (the bytes of the packet to keep: 0 = drop)
_TCP_FLAGS_OFFSET, _SYN = 13, 0x02
_TCP_INFO_BACKLOG = 24  # struct tcp_info: tcpi_unacked, a listener's accept queue length


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
    drop = (_SockFilter * 4)(
        _SockFilter(_BPF_LD_B_ABS, 0, 0, _TCP_FLAGS_OFFSET),
        _SockFilter(_BPF_JSET_K, 0, 1, _SYN),  # SYN: on to the next instruction; else skip it
        _SockFilter(_BPF_RET_K, 0, 0, 0),  # drop
        _SockFilter(_BPF_RET_K, 0, 0, 0xFFFFFFFF),  # keep the whole packet
    )
    program = _SockFprog(4, ctypes.cast(drop, ctypes.POINTER(_SockFilter)))
    try:  # the kernel copies the program during the call; `drop` lives until it returns
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))
    except OSError as error:
        logger.warning("could not stop new connections before closing the listener: %s", error)
        return False
    return True


def accept_queue(listener: Any) -> int | None:
    """Connections the kernel completed that nobody accepted yet (None where it cannot say)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCP_INFO_BACKLOG + 4:
        return None
    return int.from_bytes(info[_TCP_INFO_BACKLOG : _TCP_INFO_BACKLOG + 4], sys.byteorder)


async def accept_queue_emptied(listeners: list[Any]) -> None:
    """Wait (the event loop accepting meanwhile) until every listener's accept queue was empty at two
    looks in a row, at least :data:`ACCEPT_QUEUE_SECONDS`, at most :data:`ACCEPT_QUEUE_MAX_SECONDS`."""
    started = time.monotonic()
    empty_looks = 0
    while time.monotonic() - started < ACCEPT_QUEUE_MAX_SECONDS:
        await asyncio.sleep(0.02)
        queued = [accept_queue(listener) for listener in listeners]
        if any(count is None for count in queued):  # no TCP_INFO: the least time, then close
            await asyncio.sleep(max(0.0, ACCEPT_QUEUE_SECONDS - (time.monotonic() - started)))
            return
        empty_looks = empty_looks + 1 if not any(queued) else 0
        if empty_looks >= 2 and time.monotonic() - started >= ACCEPT_QUEUE_SECONDS:
            return
    logger.warning(
        "closing the listener with connections still in its accept queue (the event loop was busy)"
    )
