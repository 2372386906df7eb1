"""moto as a server in a process of its own, on 127.0.0.1: AWS as the functions reach it in
Lambda, over a socket. ``python -m infra.local.moto --port N`` is that server."""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

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
        [sys.executable, "-m", "infra.local.moto", "--port", str(port)],
        cwd=ROOT,
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


type WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OneDynamoDBCallAtATime:
    """Serialises moto's DynamoDB calls. DynamoDB is atomic; moto's is not thread-safe: a
    transaction deep-copies the tables that a concurrent request is changing, and answers 500
    ("dictionary changed size during iteration"). The other services (SQS long polls among
    them) still run concurrently."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            # The whole answer inside the lock: moto may build it lazily.
            return list(self._app(environ, start_response))


def main() -> None:
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415  (the server process only)
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    os.environ["MOTO_PORT"] = str(port)
    # Stopped by its parent (SIGTERM) or by Ctrl-C in the terminal (SIGINT): exit quietly.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: sys.exit(0))
    app = OneDynamoDBCallAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
