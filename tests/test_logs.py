"""`RAPIDLY_LOG_FORMAT=json`: one JSON object a line, the request's reference in it, and the same
guarantee as the text format: an exception is its type and stack, never its message."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import uuid

import pytest
from graphql import GraphQLError

from rapidly import logs
from rapidly.schema import public_error, schema


@pytest.fixture
def json_log():  # type: ignore[no-untyped-def]
    """What the root logger writes in the JSON format, as `rapidly` configures it."""
    before = (list(logging.getLogger().handlers), logging.getLogger().level)
    logs.configure("json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root = logging.getLogger()
    root.handlers[:] = before[0]
    root.setLevel(before[1])


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_time_level_logger_and_message(json_log):
    # when
    logging.getLogger("rapidly.test").warning("erased %d contacts again", 3)
    logging.getLogger("rapidly.test").info("multi\nline ääkköset")

    # then
    first, second = lines(json_log)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "WARNING" and first["logger"] == "rapidly.test"
    assert first["message"] == "erased 3 contacts again" and first["time"].endswith("Z")
    assert second["message"] == "multi\nline ääkköset"


def test_an_exception_is_logged_by_its_type_and_stack_never_its_message(json_log):
    # given
    marker = f"secret-{uuid.uuid4().hex}"

    # when
    try:
        raise ValueError(f"duplicate key value (email)=({marker})")
    except ValueError:
        logging.getLogger("rapidly.test").exception("saving failed")

    # then
    (line,) = lines(json_log)
    assert line["exception"] == "ValueError" and "test_logs.py" in line["stack"]
    assert marker not in json_log.getvalue()


def test_the_text_format_keeps_an_exceptions_message_out_too(caplog):
    # given
    marker = f"secret-{uuid.uuid4().hex}"
    formatter = logs.TextFormatter()

    # when
    try:
        raise ValueError(marker)
    except ValueError:
        logging.getLogger("rapidly.test").exception("failed")

    # then
    (record,) = [r for r in caplog.records if r.name == "rapidly.test"]
    record.exc_text = None
    assert marker not in formatter.format(record) and "ValueError" in formatter.format(record)


def test_a_masked_error_and_its_log_line_carry_the_same_reference(json_log):
    # given: an unexpected error inside a request, whose message quotes what was typed
    marker = f"typed-{uuid.uuid4().hex}"
    logs.begin_request()
    error = GraphQLError("boom", original_error=RuntimeError(marker))

    # when
    schema.process_errors([error])
    answer = public_error(error)
    logging.getLogger("rapidly.test").info("later in the same request")

    # then
    reference = answer.extensions["reference"]
    assert answer.message == f"Unexpected error. Reference: {reference}"
    logged = lines(json_log)
    assert [line["reference"] for line in logged] == [reference, reference]
    assert reference in logged[0]["message"] and marker not in json_log.getvalue()


def test_outside_a_request_a_line_has_no_reference(json_log):
    logs._request.set(None)
    logging.getLogger("rapidly.test").info("maintenance: event log: 3")
    assert "reference" not in lines(json_log)[0]


def test_text_stays_the_default(json_log):
    logs.configure(None)
    assert isinstance(logging.getLogger().handlers[0].formatter, logs.TextFormatter)
    logs.configure("json")
    assert isinstance(logging.getLogger().handlers[0].formatter, logs.JsonFormatter)


async def test_an_exception_no_one_awaited_is_logged_by_type_and_stack_never_its_message(json_log):
    # given: asyncio's report of a task's exception that no one retrieved, through Rapidly's handler
    marker = f"secret-{uuid.uuid4().hex}"
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(logs.unretrieved_exception)

    async def fails() -> None:
        raise ValueError(f"duplicate key value (email)=({marker})")

    try:
        # when
        task = loop.create_task(fails())
        await asyncio.sleep(0)
        del task
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)

    # then: what asyncio's own handler would have written (the task's repr, with the message) is not
    (line,) = lines(json_log)
    assert line["exception"] == "ValueError" and "never retrieved" in line["message"]
    assert marker not in json_log.getvalue()


def test_every_kind_of_token_is_one_the_redaction_knows():
    from rapidly import security

    prefixes = [value for name, value in vars(security).items() if name.endswith("_TOKEN_PREFIX")]
    assert prefixes
    for prefix in prefixes:
        assert logs.redact(f"a {prefix}{'x' * 20} b") == "a [token] b", prefix
