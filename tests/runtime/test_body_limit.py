"""tasktier.http.body_limit: request bodies over MAX_REQUEST_BYTES get 413, declared or
streamed."""

from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from tasktier.http.body_limit import BodyLimit


def _echo_app(max_bytes: int) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    return app


def test_a_body_within_the_limit_is_read() -> None:
    with TestClient(_echo_app(10)) as client:
        response = client.post("/echo", content=b"x" * 10)
    assert response.status_code == 200
    assert response.json() == {"received": 10}


def test_a_declared_length_over_the_limit_is_413_unread() -> None:
    with TestClient(_echo_app(10)) as client:
        response = client.post("/echo", content=b"x" * 11)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 10 bytes"}


def test_a_streamed_body_over_the_limit_is_413() -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(4):
            yield b"x" * 5

    with TestClient(_echo_app(10)) as client:
        response = client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 10 bytes"}


def test_the_app_refuses_bodies_over_max_request_bytes(client: TestClient) -> None:
    response = client.post("/jobs/x", content=b"{}" + b" " * 70_000)
    assert response.status_code == 413
