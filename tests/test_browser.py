"""The dashboards and the API docs in a real browser (headless Chromium, driven by Playwright),
and what answers there without a login.

Each tier's project runs as compose runs it (``tests/e2e/stack.py``: the compose commands as
local processes against real Redis and RabbitMQ servers), one stack per tier for the module:

- every tier: the API's ``/docs`` (Swagger UI) renders from the app alone (every request the
  page makes off the API's own origin is refused, and none is made), lists every operation of
  ``/openapi.json``, the job routes among them, and runs ``POST /examples/report`` with "Try it
  out": the job it enqueues finishes;
- rq: rq-dashboard refuses a browser without the login (401, no job in the page); with it, the
  job just enqueued through the API is found by its id the way a user finds it (the queue,
  then the ``finished`` registry, then the job's page); its own Delete button works, and the
  same action posted by a form of another site (the browser holding the login) is refused;
- celery, both brokers: Flower the same way (its tasks page, then the task's page), the worker
  started as compose starts it (no ``-E``): Flower switches task events on in the workers;
  logged in, a change posted from another site (revoke, shutdown, pool, async-apply) is
  refused by Flower's own origin check, a GET of one too, and a same-origin revoke works;
- the survey: every route rq-dashboard and Flower declare (read from their own route tables,
  so a route added by an upgrade is surveyed too) is requested without a login: rq-dashboard
  answers 401 to all; Flower answers only ``/metrics``, ``/healthcheck``, ``/logout`` and its
  static files; compose publishes every port on 127.0.0.1 only.

The tests save PNG screenshots in a temporary directory, or in ``$BROWSER_SCREENSHOTS`` when
set (``scripts/screenshots.py`` sets it to ``docs/img``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    Route,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from e2e.stack import DURABLE, TIERS, Project, Stack, render
from helpers import OPERATOR_TOKEN, Process, free_port, run, settled, wait_for
from servers import RabbitMQServer, RedisServer

pytestmark = pytest.mark.e2e

ENV = {"JOB_TIMEOUT_SECONDS": "10", "JOB_MAX_RETRIES": "3", "EXAMPLE_HEARTBEAT_SECONDS": "3600"}
CELERY = ["celery-redis", "celery-rabbitmq"]
LOGIN = ("admin", "dashboard-pw-51c2e")
TIMEOUT = 60_000  # ms, for the browser's waits: Chromium on a busy 2-core machine is slow
#: The job routes every tier's Swagger UI must list (with the example routes).
JOB_ROUTES = {
    ("GET", "/jobs/{job_id}"),
    ("GET", "/jobs"),
    ("DELETE", "/jobs/{job_id}"),
    ("POST", "/jobs/{job_id}/retry"),
    ("GET", "/schedules"),
    ("POST", "/examples/report"),
    ("POST", "/examples/welcome-email"),
    ("GET", "/examples/heartbeats"),
}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go."""
    wanted = os.environ.get("BROWSER_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        return Path(wanted)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module: Debian's, as scripts/test.sh installs it."""
    executable = shutil.which("chromium")
    assert executable, "no chromium on PATH: scripts/test.sh installs Debian's package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],  # Chromium's sandbox refuses root
            headless=True,
            timeout=TIMEOUT * 2,
        )
        yield browser
        browser.close()


# One Redis and one RabbitMQ for the module (the stacks below are module-wide too); each
# tier's keys have prefixes of their own.
@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from conftest import REDIS_PASSWORD

    server = RedisServer(tmp_path_factory.mktemp("redis"), password=REDIS_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server
    server.stop()


class Running:
    """A tier's stack for the module: a worker (durable tiers), the API, the dashboard."""

    def __init__(self, stack: Stack, client: httpx.Client, dashboard: str | None) -> None:
        self.stack, self.client, self.dashboard = stack, client, dashboard

    @property
    def project(self) -> Project:
        return self.stack.project

    def report(self, **body: Any) -> str:
        """``POST /examples/report``: the id of the job, once it has finished."""
        response = self.client.post("/examples/report", json=body)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        assert settled(self.client, job_id, timeout=60)["status"] == "finished"
        return job_id


@pytest.fixture(scope="module", params=list(TIERS))
def running(
    request: pytest.FixtureRequest, copie_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    tier = request.param
    durable = tier != "background_tasks"
    answers: dict[str, Any] = {"loss_tolerable": False, "monitoring": True} if durable else {}
    project = render(copie_session, tier, scheduling="interval", **answers)
    logs = tmp_path_factory.mktemp(f"logs-{tier}")
    with Stack(project, request, logs, ENV) as stack:
        dashboard = None
        if durable:
            worker = stack.start("worker")
            dashboard = start_dashboard(stack)
            stack.wait_ready(worker)
        with stack.serve() as (client, _):
            yield Running(stack, client, dashboard)


def start_dashboard(stack: Stack) -> str:
    """The ``dashboard`` service on a free loopback port, with :data:`LOGIN`: its base URL."""
    port = free_port()
    user, password = LOGIN
    if stack.project.backend == "rq":
        env = {
            "DASHBOARD_HOST": "127.0.0.1",
            "DASHBOARD_PORT": str(port),
            "DASHBOARD_USERNAME": user,
            "DASHBOARD_PASSWORD": password,
        }
    else:
        env = {
            "FLOWER_ADDRESS": "127.0.0.1",
            "FLOWER_PORT": str(port),
            "FLOWER_BASIC_AUTH": f"{user}:{password}",
        }
    dashboard = stack.start("dashboard", "dashboard", **env)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(dashboard, base), 90, interval=0.3, what="the dashboard")
    return base


def _answers(process: Process, url: str) -> bool:
    assert process.popen.poll() is None, f"the dashboard exited:\n{process.log()}"
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile, no login."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT)
    yield context
    context.close()


@pytest.fixture
def logged_in(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile that answers the dashboards' basic auth with :data:`LOGIN`."""
    user, password = LOGIN
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        http_credentials={"username": user, "password": password},
    )
    context.set_default_timeout(TIMEOUT)
    yield context
    context.close()


def status(response: Response | None) -> int:
    """The HTTP status of a navigation (Playwright gives None for one that loaded nothing)."""
    assert response is not None, "the navigation loaded no document"
    return response.status


def only_from(page: Page, base: str) -> list[str]:
    """Refuse every request ``page`` makes off ``base``'s origin: the list of those tried."""
    origin = urlsplit(base).netloc
    refused: list[str] = []

    def handle(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    return refused


# --- Swagger UI, every tier -----------------------------------------------------------


def test_swagger_ui_renders_offline_and_runs_a_job(
    running: Running, context: BrowserContext, shots: Path
) -> None:
    base = str(running.client.base_url).rstrip("/")
    page = context.new_page()
    refused = only_from(page, base)
    assert status(page.goto(f"{base}/docs")) == 200
    page.wait_for_selector(".opblock")
    listed = {
        (
            block.locator(".opblock-summary-method").inner_text().strip(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    }
    spec = running.client.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert listed == operations, listed ^ operations
    assert listed >= JOB_ROUTES, JOB_ROUTES - listed
    assert refused == [], f"/docs loaded these from elsewhere: {refused}"
    page.screenshot(path=shots / f"swagger-ui-{running.project.tier}.png")

    # Run POST /examples/report from the page, as a reader of the docs would: refused
    # until "Authorize" is given the operators' token, then accepted.
    block = page.locator(".opblock-post", has=page.locator('[data-path="/examples/report"]'))
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.locator("textarea.body-param__text").fill(json.dumps({"seconds": 0}))
    block.get_by_role("button", name="Execute").click()
    code = block.locator(".live-responses-table .response .response-col_status")
    code.wait_for()
    assert code.inner_text().strip() == "401"
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").fill(OPERATOR_TOKEN)
    dialog.locator("button.modal-btn.authorize").click()  # "Authorize" (Apply credentials)
    dialog.locator("button.btn-done").click()  # "Close"
    block.get_by_role("button", name="Execute").click()
    page.wait_for_function(
        "() => { const cell = document.querySelector("
        "'.live-responses-table .response .response-col_status');"
        " return cell !== null && cell.innerText.trim() !== '401'; }"
    )
    assert code.inner_text().strip() == "202"
    body = json.loads(
        block.locator(".live-responses-table .response-col_description pre").first.inner_text()
    )
    assert settled(running.client, body["job_id"], timeout=60)["status"] == "finished"
    block.screenshot(path=shots / f"swagger-ui-try-it-out-{running.project.tier}.png")
    assert refused == [], f"/docs loaded these from elsewhere: {refused}"


# --- rq-dashboard and Flower, in the browser ----------------------------------------------


@pytest.mark.parametrize("running", DURABLE, indirect=True)
def test_dashboard_refuses_a_browser_without_the_login(
    running: Running, browser: Browser, context: BrowserContext
) -> None:
    assert running.dashboard
    job_id = running.report(seconds=0)
    user, _ = LOGIN
    wrong = browser.new_context(http_credentials={"username": user, "password": "wrong"})
    if running.project.backend == "rq":
        paths = ["/", "/0/view/jobs", "/0/view/workers", f"/0/view/job/{job_id}"]
    else:
        paths = ["/", "/tasks", "/workers", "/broker", f"/task/{job_id}"]
    for profile in (context, wrong):
        for path in paths:
            url = running.dashboard + path
            page = profile.new_page()
            seen: list[tuple[str, int]] = []

            def record(response: Response, seen: list[tuple[str, int]] = seen) -> None:
                seen.append((response.url, response.status))

            page.on("response", record)
            try:
                response = page.goto(url)
            except PlaywrightError as error:
                # Without a login to offer, Chromium ends the navigation on the 401.
                assert profile is context, error
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(error), error
            else:
                # A wrong login: the 401 page is shown, and it is only the request to log in.
                assert response is not None and response.status == 401, path
                assert page.inner_text("body").strip() == "Please log in" or (
                    running.project.backend == "celery"
                ), page.content()
            assert {status for u, status in seen if u == url} == {401}, (path, seen)
            assert job_id not in shown(page), path
            page.close()
    wrong.close()


def shown(page: Page) -> str:
    """The page's HTML once Chromium has settled on it (after a failed navigation it is
    still moving to its error page for a moment)."""

    def content() -> str | None:
        try:
            return page.content()
        except PlaywrightError:
            return None

    text: str = wait_for(content, 30, what="the page to settle")
    return text


@pytest.mark.parametrize("running", ["rq"], indirect=True)
def test_rq_dashboard_shows_the_job(
    running: Running, logged_in: BrowserContext, shots: Path
) -> None:
    assert running.dashboard
    job_id = running.report(seconds=0)
    page = logged_in.new_page()
    refused = only_from(page, running.dashboard)
    assert status(page.goto(running.dashboard + "/")) == 200
    # The queues overview: the `default` queue's count of finished jobs, a link.
    queue = page.locator(
        '#queues tr[data-role="queue"]', has=page.locator("td", has_text="default")
    )
    queue.locator("td").nth(5).get_by_role("link").click()
    page.wait_for_url(re.compile(r"/view/jobs/default/finished/"))
    page.locator("#select-sort-order").select_option("dsc")  # newest first
    page.wait_for_url(re.compile(r"/view/jobs/default/finished/\d+/dsc/"))
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    row.wait_for()
    assert "build_report" in row.inner_text()
    page.screenshot(path=shots / "rq-dashboard-jobs.png")
    row.get_by_role("link", name=job_id).click()
    page.wait_for_url(re.compile(rf"/view/job/{job_id}$"))
    details = page.locator("#job-data")
    details.get_by_text("finished").first.wait_for()
    assert "build_report" in details.inner_text()
    assert job_id in page.inner_text("body")  # the page's heading
    page.screenshot(path=shots / "rq-dashboard-job.png")
    assert refused == [], f"rq-dashboard loaded these from elsewhere: {refused}"


@pytest.mark.parametrize("running", ["rq"], indirect=True)
def test_rq_dashboard_acts_only_from_its_own_pages(
    running: Running, logged_in: BrowserContext
) -> None:
    """rq-dashboard's own Delete button (a jQuery POST) works; a form that another site
    posts to the same action, with the login the browser holds, is refused."""
    assert running.dashboard
    kept, deleted = running.report(seconds=0), running.report(seconds=0)

    def known(job_id: str) -> bool:
        return running.client.get(f"/jobs/{job_id}").status_code == 200

    # Another site's page, as Chromium loads it from http://evil.example.
    page = logged_in.new_page()
    action = f"{running.dashboard}/job/{kept}/delete"
    form = f'<form method="post" action="{action}"><input name="x" value="1"></form>'
    evil = f"{form}<script>document.forms[0].submit()</script>"
    page.route(
        "http://evil.example/**", lambda route: route.fulfill(body=evil, content_type="text/html")
    )
    with page.expect_response(lambda r: r.url == action and r.status != 401) as posted:
        page.goto("http://evil.example/page.html")
    assert posted.value.status == 403, posted.value.text()
    # The form came from another page: the browser names its origin.
    assert posted.value.request.header_value("origin") == "http://evil.example"
    page.wait_for_url(action)
    assert page.inner_text("body").strip() == "Cross-site request refused"
    assert known(kept)
    page.close()

    # The dashboard's own page: Delete, then Yes in its confirmation dialog.
    page = logged_in.new_page()
    refused = only_from(page, running.dashboard)
    assert status(page.goto(f"{running.dashboard}/0/view/job/{deleted}")) == 200
    page.locator("#job-data").get_by_text("finished").first.wait_for()
    page.locator("#delete-job-btn").click()
    with page.expect_response(lambda r: r.url.endswith(f"/job/{deleted}/delete")) as posted:
        page.locator("#confirmation-modal-yes").click()
    assert posted.value.status == 200, posted.value.text()
    assert posted.value.request.header_value("origin") == running.dashboard
    wait_for(lambda: not known(deleted), 30, what="the job to be deleted")
    assert known(kept)
    assert refused == [], f"rq-dashboard loaded these from elsewhere: {refused}"


def job_flower_knows(running: Running) -> str:
    """A job run once Flower receives task events, listed by Flower; its id."""
    assert running.dashboard
    # Flower switches task events on in every worker (it broadcasts `enable_events` every
    # few seconds): the worker, started as compose starts it, logs it when it happens. A
    # job that ran before is unknown to Flower (its task page answers 404).
    (worker,) = [p for p in running.stack.processes if "worker" in p.command]
    wait_for(lambda: "enabled by remote" in worker.log(), 90, what="Flower to enable events")
    job_id = running.report(seconds=0)
    wait_for(
        lambda: job_id in httpx.get(f"{running.dashboard}/api/tasks", auth=LOGIN).json(),
        60,
        interval=0.5,
        what="Flower to list the job",
    )
    return job_id


@pytest.mark.parametrize("running", CELERY, indirect=True)
def test_flower_shows_the_task(running: Running, logged_in: BrowserContext, shots: Path) -> None:
    assert running.dashboard
    job_id = job_flower_knows(running)
    page = logged_in.new_page()
    refused = only_from(page, running.dashboard)
    assert status(page.goto(running.dashboard + "/tasks")) == 200
    row = page.locator("#tasks-table tbody tr", has_text=job_id)
    row.wait_for()
    assert "SUCCESS" in row.inner_text()
    page.screenshot(path=shots / f"flower-tasks-{running.project.broker}.png")
    row.get_by_role("link", name=job_id).click()
    page.wait_for_url(re.compile(rf"/task/{job_id}$"))
    page.get_by_text("SUCCESS").first.wait_for()
    assert "build_report" in page.content()
    page.screenshot(path=shots / f"flower-task-{running.project.broker}.png")
    assert refused == [], f"Flower loaded these from elsewhere: {refused}"


@pytest.mark.parametrize("running", CELERY, indirect=True)
def test_flower_refuses_cross_site_changes(running: Running) -> None:
    """Logged in, a browser sends the login with whatever another site makes it send. Flower
    (2.2 and later, with a login set) refuses a change whose ``Sec-Fetch-Site`` is not
    ``same-origin`` or whose ``Origin`` is another host, its ``/api/...`` routes included;
    they serve no GET. From Flower's own origin a change works."""
    assert running.dashboard
    base = running.dashboard
    job_id = running.report(seconds=0)
    (worker,) = [p for p in running.stack.processes if "worker" in p.command]

    def inspected(**params: str) -> dict[str, Any]:
        """The workers as they answer now (with ``workername``: its task lists too)."""
        answer = httpx.get(
            f"{base}/api/workers", params={"refresh": "1", **params}, auth=LOGIN, timeout=30
        )
        assert answer.status_code == 200, answer.text
        workers: dict[str, Any] = answer.json()
        return workers

    def revoked() -> list[str]:
        ids: list[str] = inspected(workername=name)[name]["revoked"]
        return ids

    (name,) = wait_for(inspected, 30, what="Flower to list the worker")
    task = next(t for t in inspected()[name]["registered"] if "build_report" in t)
    actions = [
        f"/api/task/revoke/{job_id}?terminate=true",
        f"/api/worker/shutdown/{name}",
        f"/api/worker/pool/shrink/{name}?n=1",
        f"/api/task/async-apply/{task}",
    ]
    for headers in (
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
    ):
        for path in actions:
            posted = httpx.post(base + path, auth=LOGIN, headers=headers, data={"a": "1"})
            assert posted.status_code == 403, (headers, path, posted.text[:200])
    for path in actions:
        got = httpx.get(base + path, auth=LOGIN)
        assert got.status_code == 405, (path, got.text[:200])
    # Nothing changed: the worker runs, with no task revoked.
    assert worker.popen.poll() is None, worker.log()
    assert revoked() == []
    assert settled(running.client, running.report(seconds=0))["status"] == "finished"

    # From Flower's own pages (its UI posts with jQuery): the revoke is done.
    same_origin = {"Origin": base, "Sec-Fetch-Site": "same-origin", "Referer": f"{base}/tasks"}
    posted = httpx.post(f"{base}/api/task/revoke/{job_id}", auth=LOGIN, headers=same_origin)
    assert posted.status_code == 200, posted.text
    wait_for(lambda: job_id in revoked(), 30, what="the revoke")


# --- What answers without a login -------------------------------------------------------------

#: Flower's routes that answer without basic auth, as its docs say of the first two (Prometheus
#: and a load balancer reach them without a login), and its static files and logout page
#: (public assets, a page that clears a cookie): nothing of the jobs.
FLOWER_OPEN = {r"/metrics": 200, r"/healthcheck": 200, r"/static/(.*)": 200, r"/logout": 200}
#: Flower's routes that answer 404 to anyone: the login page of an OAuth provider (none is
#: configured), and the catch-all for unknown paths.
FLOWER_NOT_FOUND = {r"/login/?", r".*"}

ROUTES_OF_FLOWER = """
import json
from flower.urls import handlers
print(json.dumps([(h.regex.pattern if hasattr(h, "regex") else h[0]).removesuffix("$")
                  for h in handlers]))
"""

ROUTES_OF_RQ_DASHBOARD = """
import json
from {package}.dashboard import create_app
print(json.dumps([[r.rule, sorted(r.methods - {{"HEAD", "OPTIONS"}})]
                  for r in create_app().url_map.iter_rules()]))
"""


def project_python(running: Running, code: str) -> Any:
    """The JSON that ``code`` prints, run by the project's own Python and settings."""
    out = run(
        ["uv", "run", "--quiet", "python", "-c", code],
        cwd=running.project.path,
        env={**os.environ, **running.stack.env},
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("running", CELERY, indirect=True)
def test_flower_answers_without_the_login_only_metrics_healthcheck_static_logout(
    running: Running,
) -> None:
    assert running.dashboard
    job_id = job_flower_knows(running)
    worker = "celery@localhost"
    patterns: list[str] = project_python(running, ROUTES_OF_FLOWER)
    assert FLOWER_OPEN.keys() | FLOWER_NOT_FOUND <= set(patterns)
    answers: dict[str, tuple[int, int, str]] = {}
    for pattern in patterns:
        path = pattern.replace("/?", "").replace("(.+)", job_id).replace("(.*)", "css/flower.css")
        path = "/no-such-page" if path == ".*" else path
        if path.startswith("/static/"):
            path = "/static/css/flower.css"
        elif path.startswith("/api/worker"):
            path = re.sub(rf"/{re.escape(job_id)}$", f"/{worker}", path)
        got = httpx.get(running.dashboard + path, timeout=10)
        posted = httpx.post(running.dashboard + path, timeout=10)
        answers[pattern] = (got.status_code, posted.status_code, got.text[:200])
        assert job_id not in got.text + posted.text or pattern in FLOWER_NOT_FOUND, pattern
    print(json.dumps(answers, indent=1))
    for pattern, (get, post, text) in answers.items():
        if pattern in FLOWER_OPEN:
            assert get == FLOWER_OPEN[pattern], (pattern, get, text)
            assert post in (403, 405), (pattern, post)  # 403: Tornado's XSRF check
        elif pattern in FLOWER_NOT_FOUND:
            assert (get, post) == (404, 404), (pattern, get, post)
        else:
            # 401 for the method the route serves, 405 for the other one.
            assert {get, post} <= {401, 405} and 401 in {get, post}, (pattern, get, post, text)
    # The open paths say nothing of a job: the metrics count tasks by name and worker.
    metrics = httpx.get(running.dashboard + "/metrics").text
    assert "flower_events_total" in metrics and job_id not in metrics
    # With the login, the closed paths answer (they are real routes, not 401 for everything).
    assert httpx.get(running.dashboard + "/api/tasks", auth=LOGIN).status_code == 200
    assert httpx.get(f"{running.dashboard}/task/{job_id}", auth=LOGIN).status_code == 200


@pytest.mark.parametrize("running", ["rq"], indirect=True)
def test_rq_dashboard_answers_nothing_without_the_login(running: Running) -> None:
    assert running.dashboard
    job_id = running.report(seconds=0)
    rules: list[tuple[str, list[str]]] = project_python(
        running, ROUTES_OF_RQ_DASHBOARD.format(package=running.project.package)
    )
    values = {
        "instance_number": "0",
        "queue_name": "default",
        "registry_name": "finished",
        "per_page": "8",
        "order": "asc",
        "page": "1",
        "job_id": job_id,
        "filename": "css/main.css",
    }
    assert any(rule.startswith("/static/") for rule, _ in rules)
    for rule, methods in rules:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule)
        for method in methods:
            response = httpx.request(method, running.dashboard + path, timeout=10)
            assert response.status_code == 401, (method, path, response.text[:200])
            assert job_id not in response.text
            if method == "GET":  # the route exists: with the login it answers
                with_login = httpx.get(running.dashboard + path, auth=LOGIN, timeout=10)
                # An action (a route that serves POST) refuses a GET, even with the login.
                expected = (405,) if "POST" in methods else (200, 302, 308)
                assert with_login.status_code in expected, (path, with_login.text[:200])
    assert job_id in httpx.get(f"{running.dashboard}/0/data/job/{job_id}.json", auth=LOGIN).text


def test_compose_publishes_the_dashboard_on_loopback_only(running: Running) -> None:
    services = running.project.services
    published = {name: s.get("ports", []) for name, s in services.items()}
    assert published["api"] == ["127.0.0.1:8000:8000"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    if running.dashboard is None:
        return
    port = "9181" if running.project.backend == "rq" else "5555"
    assert published["dashboard"] == [f"127.0.0.1:{port}:{port}"]
