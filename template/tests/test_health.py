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


def test_api_docs_need_no_cdn(client: TestClient) -> None:
    # Swagger UI and ReDoc load their JavaScript and CSS from the app itself, so they
    # render offline and behind a firewall (FastAPI's default pages load them from a CDN).
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert "https://" not in response.text, response.text
    html = client.get("/docs").text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f'"/static-offline-docs/{asset}"' in html
        assert client.get(f"/static-offline-docs/{asset}").status_code == 200
