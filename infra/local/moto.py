"""moto as a server in a process of its own, on 127.0.0.1: AWS as the functions reach it in
Lambda, over a socket. ``python -m infra.local.moto --port N`` is that server."""

import argparse
import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import StreamRecord, StreamShard, Table

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
    """Serialises moto's DynamoDB calls, its streams' among them. DynamoDB is atomic; moto's is
    not thread-safe: a request iterating a table that a concurrent one is changing answers 500
    ("dictionary changed size during iteration"), and a stream read in the middle of a
    transaction would see the records of one that is then cancelled. The other services (SQS
    long polls among them) still run concurrently."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(("DynamoDB_", "DynamoDBStreams_")):
            return self._app(environ, start_response)
        with self._lock:
            # The whole answer inside the lock: moto may build it lazily.
            return list(self._app(environ, start_response))


class _TouchedItems:
    """What a transaction can change, as it was before it: each item it names (a deep copy, or
    None where there was none) and the length of its table's stream."""

    def __init__(self, backend: "DynamoDBBackend", transact_items: list[dict[str, Any]]) -> None:
        self._items: dict[tuple[str, DynamoType, DynamoType | None], tuple[Table, Item | None]]
        self._items = {}
        self._streams: dict[str, tuple[StreamShard, list[StreamRecord], int]] = {}
        for request in transact_items:
            for operation in request.values():
                table = backend.tables.get(operation.get("TableName", ""))
                if table is None:
                    continue
                named_by = operation["Item"] if "Item" in operation else operation.get("Key", {})
                try:
                    hash_key, range_key = backend.get_keys_value(table, named_by)
                except Exception:  # noqa: S112  (moto fails this one before it writes)
                    continue
                item = table.get_item(hash_key, range_key)
                self._items.setdefault(
                    (table.name, hash_key, range_key), (table, copy.deepcopy(item))
                )
                if (shard := table.stream_shard) is not None:
                    self._streams.setdefault(table.name, (shard, shard.items, len(shard.items)))

    def restore(self) -> None:
        for (_, hash_key, range_key), (table, item) in self._items.items():
            # moto keeps a table's items by hash key, and by range key within it when it has one.
            within: dict[Any, Any] = table.items if range_key is None else table.items[hash_key]
            place = hash_key if range_key is None else range_key
            if item is None:
                within.pop(place, None)
            else:
                within[place] = item
        for shard, records, length in self._streams.values():
            del records[length:]
            shard.items = records


class _NoTableToBackUp:
    """The backend as moto's own transaction sees it: it deep-copies each table it finds in
    ``tables`` to roll back to; here it finds none. The rest is the backend."""

    tables: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, backend: "DynamoDBBackend") -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def keep_transactions_item_sized() -> None:
    """moto's TransactWriteItems deep-copies every table it touches to roll back on a failed
    condition: each transaction costs time and memory in proportion to all the data stored so
    far (2.7 GB and 1 to 5 s a status callback over a long `make bench`). Here it runs moto's
    own transaction (its checks, cancellation reasons, ReturnValuesOnConditionCheckFailure)
    with the rollback kept to the items it names and their tables' stream records: all or
    nothing at the cost of what it touches. Any failure rolls back, as in DynamoDB."""
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    moto_transaction = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        touched = _TouchedItems(self, transact_items)
        try:
            moto_transaction(_NoTableToBackUp(self), transact_items)  # type: ignore[arg-type]
        except Exception:
            touched.restore()
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


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
    keep_transactions_item_sized()
    app = OneDynamoDBCallAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
