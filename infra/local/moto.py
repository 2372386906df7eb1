"""moto as a server in a process of its own, on 127.0.0.1: AWS as the functions reach it in
Lambda, over a socket."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

LOCAL_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """Starts moto, waits until it answers, points AWS_ENDPOINT_URL at it; stops it on exit."""
    port = port or free_port()
    server = subprocess.Popen(  # noqa: S603  (our own interpreter, our own arguments)
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        os.environ.update(LOCAL_AWS)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        yield endpoint
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
