"""The local stack: template.yaml's functions behind an HTTP server as API Gateway (HTTP API,
payload 2.0) would call them, its queues polled as Lambda's event sources would, its schedules
run at their rate, AWS on a moto server and Twilio by the stand-in (unless TWILIO_API_URL points
elsewhere). Everything listens on 127.0.0.1.

Each function runs one invocation at a time, as in one Lambda execution environment: its module
state (Powertools' resolver among it) is never shared by two requests. With an API key, every
route but the public ones (the webhooks) asks for it, as IAM does deployed."""

import base64
import hmac
import importlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import boto3
from pydantic import BaseModel, Field, ValidationError

from infra import sam_template
from infra.local.twilio_standin import TwilioStandIn, default_templates

if TYPE_CHECKING:
    from whatsapp_gateway.runtime import Runtime

LOCAL_ONLY = "/_local/"
INTERNAL_ERROR = b'{"message":"Internal Server Error"}'
# API Gateway's answers to a request it does not pass on (HTTP API: 10 MB at most).
BAD_REQUEST = b'{"message":"Bad Request"}'
TOO_LARGE = b'{"message":"Request Entity Too Large"}'
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
API_KEY_SCHEME = "Bearer "
log = logging.getLogger("local")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """What Lambda passes a handler as its context."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass(frozen=True)
class Route:
    method: str
    template_path: str
    pattern: re.Pattern[str]
    function: str
    # No authorizer (Twilio's webhooks): no API key asked either.
    public: bool


class ClockAdvance(BaseModel):
    # Forward only, and by at most ten years: a date past 9999 would overflow.
    seconds: float = Field(ge=0, le=10 * 365 * 86400, allow_inf_nan=False)


class TwilioFailure(BaseModel):
    to: str
    error_code: int


class ScheduleRun(BaseModel):
    function: str = "TemplateSyncFunction"


class LocalStack:
    def __init__(
        self,
        *,
        port: int,
        twilio_port: int,
        environment: dict[str, str],
        stand_in: bool = True,
        api_key: str | None = None,
    ) -> None:
        self.port = port
        self.twilio_port = twilio_port
        self.base_url = f"http://127.0.0.1:{port}"
        self._environment = environment
        self._use_stand_in = stand_in
        self._api_key = api_key
        self._handlers: dict[str, Handler] = {}
        # One execution environment a function: a lock, as a reserved concurrency of 1.
        self._environments = {function: threading.Lock() for function in sam_template.functions()}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self.stand_in: TwilioStandIn | None = None
        self.routes: list[Route] = []
        self._runtime: Runtime | None = None

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """AWS resources from the template, the functions' environment, then the servers and
        the pollers. Expects AWS_ENDPOINT_URL to point at a moto server."""
        names, attributes = self._create_resources()
        resolve = sam_template.Resolver(
            sam_template.parameter_defaults() | {"PublicBaseUrl": self.base_url},
            names,
            attributes,
        )
        for properties in sam_template.functions().values():
            for name, value in properties["Environment"]["Variables"].items():
                resolved = resolve(value)
                if name not in self._environment and resolved not in ("", None):
                    os.environ[name] = str(resolved)
        os.environ.update(self._environment)
        # As Lambda does: the functions' environment first, then their code (Powertools reads
        # its service and namespace when the shared package is imported).
        from whatsapp_gateway.runtime import runtime  # noqa: PLC0415

        runtime.cache_clear()
        deps = runtime()
        self._runtime = deps
        if self._use_stand_in:
            self.stand_in = TwilioStandIn(
                account_sid=os.environ["TWILIO_ACCOUNT_SID"],
                auth_token=os.environ["TWILIO_AUTH_TOKEN"],
                clock=deps.clock,
                templates=default_templates(os.environ["TWILIO_ACCOUNT_SID"]),
            )
            os.environ["TWILIO_API_URL"] = self.stand_in.start(self.twilio_port)
            deps.__dict__.pop("twilio_settings", None)
        # POST /v1/templates/sync invokes the sync function: locally, in a thread of this
        # process (Lambda's asynchronous invocation).
        deps.__dict__["template_sync"] = _InProcessTrigger(self, "TemplateSyncFunction")
        self.serve()
        for function, queue, mapping in sam_template.queue_consumers():
            self._spawn(self._poll, function, names[queue], int(mapping.get("BatchSize", 10)))
        for function, properties in sam_template.events("ScheduleV2"):
            seconds = _rate_seconds(resolve(properties["ScheduleExpression"]))
            self._spawn(self._schedule, function, seconds)

    def stop(self) -> None:
        """No new work; the invocations in flight (a request, a batch, a scheduled sync) end
        before Twilio's stand-in stops: none fails for a service stopped under it."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=25)
        if self.stand_in is not None:
            self.stand_in.stop()

    # ------------------------------------------------------------------ AWS resources

    def _create_resources(self) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        tables = sam_template.create_tables(boto3.client("dynamodb"))
        buses = sam_template.create_event_buses(boto3.client("events"))
        queues = sam_template.create_queues(boto3.client("sqs"))
        sqs = boto3.client("sqs")
        attributes: dict[tuple[str, str], str] = {}
        for logical_id, url in queues.items():
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            attributes[(logical_id, "Arn")] = arn
            attributes[(logical_id, "QueueName")] = url.rsplit("/", 1)[1]
        names = {**tables, **buses, **queues}
        # Resources with no local counterpart resolve to their logical id (a function's name).
        for logical_id in sam_template.load_template()["Resources"]:
            names.setdefault(logical_id, logical_id)
        return names, attributes

    # ------------------------------------------------------------------ functions

    def handler(self, function: str) -> Handler:
        """The function's handler, imported in this process as ``<code folder>.<module>``."""
        if function not in self._handlers:
            properties = sam_template.functions()[function]
            module_name, attribute = properties["Handler"].rsplit(".", 1)
            package = Path(properties["CodeUri"]).name
            module = importlib.import_module(f"{package}.{module_name}")
            self._handlers[function] = getattr(module, attribute)
        return self._handlers[function]

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Runs the function once its environment is free: Lambda never hands an environment a
        second invocation before the first returns (the worker's own threads run inside one)."""
        with self._environments[function]:
            return self.handler(function)(event, LocalContext(function_name=function))

    # ------------------------------------------------------------------ HTTP API

    def _routes(self) -> list[Route]:
        routes = []
        for function, properties in sam_template.events("HttpApi"):
            path = properties["Path"]
            pattern = re.compile(
                "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
            )
            public = properties.get("Auth", {}).get("Authorizer") == "NONE"
            routes.append(Route(properties["Method"].upper(), path, pattern, function, public))
        return routes

    def serve(self) -> None:
        """The template's HTTP routes at ``base_url``, in a thread, until ``stop()``."""
        self.routes = self._routes()
        stack = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stack._handle(self)

            def do_POST(self) -> None:
                stack._handle(self)

            def do_PUT(self) -> None:
                stack._handle(self)

            def do_DELETE(self) -> None:
                stack._handle(self)

            # Methods no route has: answered as an HTTP API answers them (404), not 501.
            def do_PATCH(self) -> None:
                stack._handle(self)

            def do_OPTIONS(self) -> None:
                stack._handle(self)

            def do_HEAD(self) -> None:
                stack._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                """One line a request is logged by the stack instead."""

        self._server = _Server(("127.0.0.1", self.port), Handler)
        # Stopping waits for the requests in flight: none is cut off by AWS going away.
        self._server.daemon_threads = False
        self._spawn(self._server.serve_forever)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        started = time.perf_counter()
        parts = urlsplit(request.path)
        length = _content_length(request)
        if length is None or length > MAX_PAYLOAD_BYTES:
            # Refused unread: the connection cannot carry another request.
            request.close_connection = True
            status, answer = (400, BAD_REQUEST) if length is None else (413, TOO_LARGE)
            headers = {"Content-Type": "application/json", "Connection": "close"}
        else:
            body = request.rfile.read(length) if length else b""
            status, headers, answer = self._route(request, parts.path, parts.query, body)
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(answer)
        log.info(
            "%s %s %d %.0fms",
            request.command,
            parts.path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    def _route(
        self, request: BaseHTTPRequestHandler, path: str, query: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        route, matched = self._match(request.command, path)
        if not (route and route.public) and not self._authorized(request):
            return _error(
                401,
                "unauthorized",
                "send the local stack's API key (printed at start-up) as "
                "'Authorization: Bearer <key>'",
            )
        if path.startswith(LOCAL_ONLY):
            return self._local_route(request.command, path, body)
        if route is None or matched is None:
            return 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
        event = _http_api_event(request, route, path, query, body, matched.groupdict())
        try:
            return _http_answer(self.invoke(route.function, event))
        except Exception:
            # What API Gateway answers when a function fails: Twilio then retries.
            log.exception("%s failed", route.function)
            return 500, {"Content-Type": "application/json"}, INTERNAL_ERROR

    def _match(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self.routes:
            matched = route.pattern.match(path)
            if matched and route.method == method:
                return route, matched
        return None, None

    def _authorized(self, request: BaseHTTPRequestHandler) -> bool:
        """No key set (the stand-in), or the request carries it."""
        if self._api_key is None:
            return True
        given = request.headers.get("Authorization", "")
        return given.startswith(API_KEY_SCHEME) and hmac.compare_digest(
            given.removeprefix(API_KEY_SCHEME).encode(), self._api_key.encode()
        )

    def _local_route(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Local only: health, the clock, the schedules, and the Twilio stand-in's controls."""
        deps = self._runtime
        assert deps is not None, "routes are served once started"
        answer: Any
        try:
            if (method, path) == ("GET", "/_local/health"):
                answer = {"status": "ok", "now": deps.clock.now().isoformat()}
            elif (method, path) == ("POST", "/_local/clock/advance"):
                advance = ClockAdvance.model_validate_json(body or b"{}")
                answer = {"now": deps.clock.advance(advance.seconds).isoformat()}
            elif (method, path) == ("POST", "/_local/twilio/fail") and self.stand_in:
                failure = TwilioFailure.model_validate_json(body or b"{}")
                self.stand_in.fail_next(failure.to, failure.error_code)
                answer = failure.model_dump()
            elif (method, path) == ("GET", "/_local/twilio/exchanges") and self.stand_in:
                answer = {"exchanges": [e.as_json() for e in self.stand_in.exchanges]}
            elif (method, path) == ("POST", "/_local/schedules/run"):
                return self._run_schedule(ScheduleRun.model_validate_json(body or b"{}"))
            else:
                return 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
        except ValidationError as error:
            from whatsapp_gateway.errors import describe  # noqa: PLC0415  (once started)

            return _error(400, "invalid_request", describe(error))
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _run_schedule(self, run: ScheduleRun) -> tuple[int, dict[str, str], bytes]:
        scheduled = {function for function, _ in sam_template.events("ScheduleV2")}
        if run.function not in scheduled:
            return _error(
                400, "invalid_request", f"function: one of {', '.join(sorted(scheduled))}"
            )
        try:
            result = self.invoke(run.function, _schedule_event())
        except Exception:
            log.exception("%s failed", run.function)
            return 500, {"Content-Type": "application/json"}, INTERNAL_ERROR
        answer = {"function": run.function, "result": result}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    # ------------------------------------------------------------------ event sources

    def _poll(self, function: str, queue_url: str, batch_size: int) -> None:
        """Lambda's SQS event source: batches of up to ``batch_size``, the records the handler
        reports failed left for redelivery, the others deleted. One poller a queue: with
        several, moto let two workers handle one FIFO message at once, which SQS and DynamoDB's
        conditional writes prevent (measured: 7 doubled sends in 300 with four pollers, none
        with one)."""
        sqs = boto3.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        while not self._stopping.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=batch_size,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=1,
                ).get("Messages", [])
            except Exception:  # moto stopping under us: the stack is shutting down
                if self._stopping.is_set():
                    return
                raise
            if not received:
                continue
            event = {"Records": [_sqs_record(message, arn) for message in received]}
            try:
                answer = self.invoke(function, event)
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            except Exception:
                log.exception("%s failed its whole batch", function)
                failed = {message["MessageId"] for message in received}
            for message in received:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _schedule(self, function: str, seconds: float) -> None:
        """A schedule at its rate: first run at start-up, as a deployed stack's soon would."""
        while not self._stopping.is_set():
            try:
                self.invoke(function, _schedule_event())
            except Exception:
                log.exception("%s failed on its schedule", function)
            self._stopping.wait(seconds)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)


class _Server(ThreadingHTTPServer):
    # API Gateway takes every connection of a burst; the default backlog of 5 reset some of
    # 48 requests sent at once.
    request_queue_size = 128


class _InProcessTrigger:
    """Lambda's asynchronous invocation of a function, locally: a thread."""

    def __init__(self, stack: LocalStack, function: str) -> None:
        self._stack = stack
        self._function = function

    def trigger(self) -> None:
        def run() -> None:
            try:
                self._stack.invoke(self._function, {"source": "whatsapp.gateway", "trigger": "api"})
            except Exception:
                log.exception("%s failed", self._function)

        threading.Thread(target=run, daemon=True).start()


def _http_api_event(  # noqa: PLR0917  (the request's parts, as the server split them)
    request: BaseHTTPRequestHandler,
    route: Route,
    path: str,
    query: str,
    body: bytes,
    path_parameters: dict[str, str],
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event AWS would build for this request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    content_type = headers.get("content-type", "")
    # AWS base64-encodes every body that is not JSON or text (forms included), and here any
    # that is not UTF-8 (the function gets its bytes, not a failure of the stack).
    as_text = content_type.startswith(("application/json", "text/")) and _is_utf8(body)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.template_path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": route.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.template_path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not as_text,
    }
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = body.decode() if as_text else base64.b64encode(body).decode()
    return event


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _content_length(request: BaseHTTPRequestHandler) -> int | None:
    """The body's length; None when the header is not a length."""
    declared = request.headers.get("Content-Length") or "0"
    return int(declared) if declared.isascii() and declared.isdigit() else None


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """An answer of the stack itself, in the contract's error shape."""
    from whatsapp_gateway.errors import error_body  # noqa: PLC0415  (once started)

    headers = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return status, headers, error_body(code, message).encode()


def _http_answer(answer: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    headers = {name: str(value) for name, value in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    return int(answer.get("statusCode", 200)), headers, raw


def _sqs_record(message: Any, queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "dataType": value["DataType"],
                "stringListValues": [],
                "binaryListValues": [],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def _schedule_event() -> dict[str, Any]:
    return {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}


def _rate_seconds(expression: str) -> float:
    """``rate(15 minutes)`` in seconds."""
    matched = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if not matched:
        raise ValueError(f"only rate() schedules run locally: {expression}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[matched.group(2).rstrip("s")]
    return int(matched.group(1)) * unit
