"""Loopback ports for the servers the tests and the benchmark start, with no race for them.

Asking the kernel for a free port (bind to port 0, close, hand the number to a server) leaves
a window between choosing and binding: a parallel test worker, or any client socket, can take
the port first, and the server fails with "address already in use". Here instead:

- ports come from below the kernel's ephemeral range (``ip_local_port_range``), which the
  kernel never hands to a client socket or a port-0 bind;
- each pytest-xdist worker (``gw0``, ``gw1``, ...) owns its own block of that space, so two
  workers never pick the same port;
- within a block, ports are handed out in turn (a port is not handed out again until the
  block wraps around) and one that is still bound (a server of an earlier test that has not
  closed yet, or a program outside the tests) is skipped.

A process started by a test that needs ports of its own (the benchmark, run by
``tests/test_bench.py``) gets a range reserved from its parent's block with
:func:`reserve`, passed in the ``TEST_PORTS`` environment variable (``start-end``).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

#: Ports per pytest-xdist worker.
BLOCK = 400
#: The lowest port handed out (well above the well-known and most registered services).
LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _block() -> range:
    reserved = os.environ.get("TEST_PORTS")
    if reserved:
        start, end = (int(part) for part in reserved.split("-"))
        return range(start, end + 1)
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = int(match.group(1)) if match else 0
    top = _ephemeral_start()
    blocks = (top - LOWEST) // BLOCK
    assert index < blocks, f"{index + 1} test workers need more ports than {LOWEST}-{top} holds"
    start = LOWEST + index * BLOCK
    return range(start, start + BLOCK)


_ports = _block()
_next = 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port no other test worker will pick, not bound by anything right now."""
    global _next
    for _ in range(len(_ports)):
        port = _ports[_next % len(_ports)]
        _next += 1
        if _bindable(port):
            return port
    raise AssertionError(f"every port of {_ports.start}-{_ports.stop - 1} is in use")


def reserve(count: int) -> str:
    """Reserve ``count`` consecutive ports of this block for a child process; returns the
    value of its ``TEST_PORTS`` variable."""
    global _next
    assert count < len(_ports), f"cannot reserve {count} of {len(_ports)} ports"
    if _next % len(_ports) + count > len(_ports):  # no wrap inside a reservation
        _next += len(_ports) - _next % len(_ports)
    start = _ports[_next % len(_ports)]
    _next += count
    return f"{start}-{start + count - 1}"
