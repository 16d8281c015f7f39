"""tasktier.logs and request ids: the two formats, the job and request fields, request ids,
job metadata, secrets masked in log lines (the masking itself: test_redaction.py)."""

import io
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tasktier import model as job_model
from tasktier.http.request_ids import RequestIds, request_id_of
from tasktier.logs import (
    ContextFilter,
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    configure_logging,
    formatter,
)
from tasktier.model import (
    JobContext,
    job_metadata,
    job_or_none,
    metadata_from,
    request_id,
    running_as,
    serving_request,
)

SECRET = "hunter2"


def written(log_formatter: logging.Formatter, emit: Any) -> list[str]:
    """The lines a handler with ``log_formatter`` and the project's filters writes while
    ``emit(logger)`` logs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter)
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter(job_or_none, request_id))
    logger = logging.getLogger("test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_job_and_its_request() -> None:
    def emit(logger: logging.Logger) -> None:
        logger.info("outside")
        with running_as(JobContext("j1", 2, "tasks.send", "req-7")):
            logger.info("inside %s", "a job")

    outside, inside = (json.loads(line) for line in written(JsonFormatter(), emit))
    assert outside.keys() == {"time", "level", "logger", "message"}
    assert outside["message"] == "outside" and outside["level"] == "INFO"
    assert inside["message"] == "inside a job"
    assert (inside["job_id"], inside["task"], inside["attempt"]) == ("j1", "tasks.send", 2)
    assert inside["request_id"] == "req-7"


def test_json_lines_mask_passwords_in_messages_and_tracebacks() -> None:
    url = f"redis://:{SECRET}@redis:6379/0"

    def emit(logger: logging.Logger) -> None:
        try:
            raise ConnectionError(f"lost {url}")
        except ConnectionError:
            logger.exception("Redis %s is gone", url)

    (line,) = written(JsonFormatter(), emit)
    record = json.loads(line)
    assert SECRET not in line
    assert "redis://:***@redis:6379/0" in record["message"]
    assert "ConnectionError: lost redis://:***@" in record["exception"]


def test_text_lines_end_with_the_job_fields_and_keep_the_traceback_below() -> None:
    def emit(logger: logging.Logger) -> None:
        with serving_request("req-1"):
            logger.info("a request")
        with running_as(JobContext("j2", 1, "tasks.report")):
            try:
                raise ValueError("no")
            except ValueError:
                logger.exception("failed")

    lines = written(TextFormatter(), emit)
    assert lines[0].endswith("test_logs: a request [request_id=req-1]")
    assert lines[1].endswith("failed [job_id=j2 task=tasks.report attempt=1]")
    assert lines[-1] == "ValueError: no"


def test_an_unknown_log_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of text, json"):
        formatter("xml")


def test_a_task_sees_its_request_id() -> None:
    with running_as(JobContext("j", 1, "t"), {"request_id": "req-9"}):
        assert job_model.current_job().request_id == "req-9"
    assert job_or_none() is None


def test_a_jobs_metadata_holds_the_request_id_and_what_hooks_add() -> None:
    assert job_metadata() == {}  # outside a request: nothing

    def inject(metadata: dict[str, str]) -> None:
        metadata["traceparent"] = "00-abc-def-01"

    seen: list[tuple[str, Mapping[str, str]]] = []

    @contextmanager
    def around(job: JobContext, metadata: Mapping[str, str]) -> Iterator[None]:
        seen.append((job.job_id, metadata))
        yield

    job_model.INJECTORS.append(inject)
    job_model.AROUND_RUN.append(around)
    try:
        with serving_request("req-3"):
            metadata = job_metadata()
        assert metadata == {"request_id": "req-3", "traceparent": "00-abc-def-01"}
        with running_as(JobContext("j3", 1, "t"), metadata):
            pass
        assert seen == [("j3", metadata)]
    finally:
        job_model.INJECTORS.remove(inject)
        job_model.AROUND_RUN.remove(around)


def test_metadata_read_back_keeps_only_strings() -> None:
    assert metadata_from({"request_id": "r", "n": 1, 2: "x"}) == {"request_id": "r"}
    assert metadata_from(None) == {} and metadata_from("text") == {}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()

    @app.get("/seen")
    async def seen() -> dict[str, str | None]:
        return {"request_id": request_id()}

    app.add_middleware(RequestIds)
    with TestClient(app) as test_client:
        yield test_client


def test_a_valid_request_id_is_kept_and_returned(client: TestClient) -> None:
    response = client.get("/seen", headers={"X-Request-ID": "edge-42:a.b_c"})
    assert response.json() == {"request_id": "edge-42:a.b_c"}
    assert response.headers["X-Request-ID"] == "edge-42:a.b_c"


@pytest.mark.parametrize("given", ["", "a b", "x" * 129, "tab\there", "é", "a;b=c"])
def test_an_unsafe_request_id_is_replaced(client: TestClient, given: str) -> None:
    assert request_id_of(given) != given
    response = client.get("/seen", headers=[(b"X-Request-ID", given.encode())])
    rid = response.headers["X-Request-ID"]
    assert rid != given and response.json() == {"request_id": rid}


def test_each_request_without_an_id_gets_a_new_one(client: TestClient) -> None:
    first, second = (client.get("/seen").headers["X-Request-ID"] for _ in range(2))
    assert first != second and len(first) == 32
    assert request_id() is None  # outside a request


def test_configure_logging_sets_the_format_on_the_root_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(stream)])
    configure_logging("INFO", "json")
    logging.getLogger("x").warning("hello")
    assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "hello"


# --- secrets masked in log lines (redact() itself: test_redaction.py) ---

PW = "S3cretPw"


def test_log_lines_mask_secrets_of_every_kind() -> None:
    def emit(logger: logging.Logger) -> None:
        logger.warning("connect failed: %s", f"password={PW} Authorization: Bearer {PW}")

    (line,) = written(JsonFormatter(), emit)
    assert PW not in line
    assert json.loads(line)["message"] == "connect failed: password=*** Authorization: Bearer ***"
