"""The API's JSON parser: a body is bounded (size, nesting) before json.loads sees it."""

import pytest

from whatsapp_gateway.errors import ApiError
from whatsapp_gateway.http import MAX_BODY_BYTES, MAX_JSON_DEPTH, read_json_body


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(nested(MAX_JSON_DEPTH), id="at-the-limit"),
        pytest.param('{"a": "' + "[{" * 50 + '"}', id="brackets-in-a-string"),
        pytest.param('{"a": "\\"[[[[[[[[[[[["}', id="after-an-escaped-quote"),
        pytest.param(
            '["\\\\", ' + nested(MAX_JSON_DEPTH - 1) + "]", id="after-an-escaped-backslash"
        ),
    ],
)
def test_what_json_loads_takes_safely_is_parsed(text):
    assert read_json_body(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(nested(MAX_JSON_DEPTH + 1), id="one-over"),
        pytest.param(
            '{"a": "\\\\"' + ", " + nested(MAX_JSON_DEPTH + 1) + "}",
            id="a-string-ending-in-a-backslash",
        ),
        pytest.param("[" * 60_000, id="never-closed"),
    ],
)
def test_json_nested_too_deep_is_refused_before_it_is_parsed(text):
    with pytest.raises(ApiError) as refused:
        read_json_body(text)

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert "nested" in refused.value.message


def test_the_size_is_counted_in_utf8_bytes():
    fits = '"' + "é" * ((MAX_BODY_BYTES - 2) // 2) + '"'
    assert read_json_body(fits)

    with pytest.raises(ApiError) as refused:
        read_json_body(fits[:-1] + 'é"')

    assert (refused.value.status, refused.value.code) == (413, "payload_too_large")


@pytest.mark.parametrize("text", ['{"a": ', "1" * 5000, "NaN]"])
def test_what_json_loads_refuses_is_a_400(text):
    with pytest.raises(ApiError) as refused:
        read_json_body(text)

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
