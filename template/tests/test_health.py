import pytest
from fastapi.testclient import TestClient


def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_jobs_can_be_taken(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_unknown_job_is_404(client: TestClient) -> None:
    response = client.get("/jobs/never-enqueued")
    assert response.status_code == 404
    assert "never-enqueued" in response.json()["detail"]


@pytest.mark.parametrize("job_id", ["£", "a b", "../etc", "x" * 129, "id;drop"])
def test_a_job_id_no_tier_makes_is_404(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code in (404, 422)  # 422: longer than 128 characters
    assert response.headers["content-type"] == "application/json"
