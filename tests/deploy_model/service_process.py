"""`flute score serve` as a real uvicorn process on a free loopback port, for the service tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(artifact: Path, trust: Path, port: int, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "flute.cli.main", "score", "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port), "--trust", str(trust), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def running_service(artifact: Path, trust: Path, *options: str) -> Iterator[str]:
    """The service's base URL once /health answers (60 s at most); stopped on exit."""
    port = free_port()
    process = start_service(artifact, trust, port, *options)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the service exited early: {process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the service did not answer /health within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
