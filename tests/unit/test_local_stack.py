"""The local stack runs each function as Lambda runs it: one invocation at a time per execution
environment (here, one environment a function), whatever the HTTP server's threads do; and it
answers as API Gateway does when a function fails. In-process, on loopback, without AWS."""

import base64
import contextlib
import http.client
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from infra.local.moto import free_port
from infra.local.stack import LocalStack

# How long an invocation waits for a second one to join it: one that never comes (the stack
# holds it back) costs the test this once.
JOIN_SECONDS = 1.0


def test_a_function_never_runs_two_invocations_at_once(monkeypatch: pytest.MonkeyPatch):
    # Given a handler that notes how many of its invocations run at once, and waits for a
    # second one to join it
    stack = LocalStack(port=0, twilio_port=0, environment={})
    inside, most = 0, 0
    counting = threading.Lock()
    both_inside = threading.Barrier(2)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal inside, most
        with counting:
            inside += 1
            most = max(most, inside)
        # alone, as it should be, it waits in vain
        with contextlib.suppress(threading.BrokenBarrierError):
            both_inside.wait(timeout=JOIN_SECONDS)
        with counting:
            inside -= 1
        return {"statusCode": 200}

    monkeypatch.setattr(stack, "handler", lambda function: handler)

    # When two requests for the function arrive at once
    threads = [threading.Thread(target=stack.invoke, args=("ApiFunction", {})) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then the second waited for the first
    assert most == 1


def test_different_functions_run_at_once(monkeypatch: pytest.MonkeyPatch):
    # Given two functions whose invocations each wait for the other's
    stack = LocalStack(port=0, twilio_port=0, environment={})
    both_inside = threading.Barrier(2)
    joined: list[bool] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        try:
            both_inside.wait(timeout=10 * JOIN_SECONDS)
            joined.append(True)
        except threading.BrokenBarrierError:
            joined.append(False)

    monkeypatch.setattr(stack, "handler", lambda function: handler)

    # When each is invoked
    threads = [
        threading.Thread(target=stack.invoke, args=(function, {}))
        for function in ("ApiFunction", "StatusWebhookFunction")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then they ran side by side, as two Lambda functions do
    assert joined == [True, True]


def test_a_function_that_fails_is_answered_500_as_api_gateway_answers(
    monkeypatch: pytest.MonkeyPatch,
):
    # Given the stack's HTTP routes, and a function that fails
    stack = LocalStack(port=free_port(), twilio_port=0, environment={})

    def handler(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("DynamoDB is unavailable")

    monkeypatch.setattr(stack, "handler", lambda function: handler)
    stack.serve()
    try:
        # When Twilio posts a webhook to it
        status, body = _post(f"{stack.base_url}/webhooks/twilio/inbound", b"Body=Hi")

        # Then Twilio gets API Gateway's 500 (so that it retries), and the stack still answers
        assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
        assert _post(f"{stack.base_url}/nowhere", b"")[0] == 404
    finally:
        stack.stop()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310  (loopback)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize(
    ("content_length", "status"),
    [("abc", 400), ("-1", 400), ("²", 400), (str(11 * 1024 * 1024), 413)],
)
def test_a_request_api_gateway_would_refuse_is_refused_before_any_function(
    monkeypatch: pytest.MonkeyPatch, content_length: str, status: int
):
    # Given the stack's HTTP routes, and a function that notes its invocations
    stack = LocalStack(port=free_port(), twilio_port=0, environment={})
    invoked: list[dict[str, Any]] = []
    monkeypatch.setattr(stack, "handler", lambda function: lambda event, _: invoked.append(event))
    stack.serve()
    try:
        # When a request declares a length that is not one, or over API Gateway's 10 MB
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        connection.putrequest("POST", "/webhooks/twilio/inbound")
        connection.putheader("Content-Length", content_length)
        connection.endheaders()
        answer = connection.getresponse()

        # Then it is answered as API Gateway answers it, and no function ran
        assert answer.status == status
        assert "message" in json.loads(answer.read())
        assert invoked == []
    finally:
        stack.stop()


def test_a_json_body_that_is_not_utf8_reaches_the_function_base64_encoded(
    monkeypatch: pytest.MonkeyPatch,
):
    # Given the stack's HTTP routes, and a function that keeps its event
    stack = LocalStack(port=free_port(), twilio_port=0, environment={})
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        events.append(event)
        return {"statusCode": 400, "body": '{"error": {"code": "invalid_request"}}'}

    monkeypatch.setattr(stack, "handler", lambda function: handler)
    stack.serve()
    try:
        # When a "JSON" body is not UTF-8
        body = b'{"to": "\xff\xfe"}'
        request = urllib.request.Request(  # noqa: S310  (loopback)
            f"{stack.base_url}/v1/messages",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310
        except urllib.error.HTTPError as error:
            status = error.code

        # Then the function gets its bytes (and answers), not the stack a traceback
        assert status == 400
        [event] = events
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body
    finally:
        stack.stop()


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "HEAD", "PUT", "DELETE"])
def test_a_method_no_route_has_is_not_found_as_an_http_api_answers(
    monkeypatch: pytest.MonkeyPatch, method: str
):
    # Given the stack's HTTP routes, and a function that notes its invocations
    stack = LocalStack(port=free_port(), twilio_port=0, environment={})
    invoked: list[dict[str, Any]] = []
    monkeypatch.setattr(stack, "handler", lambda function: lambda event, _: invoked.append(event))
    stack.serve()
    try:
        # When a route is asked for with a method it does not have
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        connection.request(method, "/v1/templates")
        answer = connection.getresponse()

        # Then the answer is API Gateway's 404 (no body for HEAD), and no function ran
        assert answer.status == 404
        assert answer.read() == (b"" if method == "HEAD" else b'{"message":"Not Found"}')
        assert invoked == []
        connection.close()
    finally:
        stack.stop()
