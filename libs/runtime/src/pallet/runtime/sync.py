"""The messages between the runtime and the container's setup processes, one JSON object
a line over a pipe: ``{"userns": true}`` (maps wanted), ``{"pid": N}`` (the container
process), ``{"ready": true}`` and ``{"error": "..."}``; the runtime answers ``ok`` lines."""

from __future__ import annotations

import json
import os
from typing import Any


def send(fd: int, **message: Any) -> None:
    data = json.dumps(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data):]


def receive_line(fd: int) -> bytes:
    """One line from ``fd`` without its newline; b"" at end of file."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return b""
        line += chunk
    return line[:-1]


def receive(fd: int) -> dict[str, Any] | None:
    line = receive_line(fd)
    if not line:
        return None
    message = json.loads(line)
    assert isinstance(message, dict)
    return message
