"""deploy/kubernetes/ of generated projects, checked offline: the core kinds with
kubernetes-validate (strict, a pinned Kubernetes version), KEDA's kinds with a JSON schema
of their documented fields (tests/schemas/keda.schema.json), and what no schema sees:
selectors, the same commands as compose, probe paths that are routes, env vars that
config.py reads, queue names, the singleton scheduler, no secret values."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO_ROOT, compose_services, run

#: The Kubernetes version the manifests are validated against (shipped by kubernetes-validate).
KUBERNETES_VERSION = "1.33.0"
KEDA_SCHEMA = REPO_ROOT / "tests/schemas/keda.schema.json"
BIN = Path(sys.executable).parent

#: Every tier and broker, and the answers that change the manifests.
CASES: dict[str, dict[str, Any]] = {
    "bt": {"task_backend": "background_tasks", "loss_tolerable": True},
    "bt-interval": {
        "task_backend": "background_tasks",
        "loss_tolerable": True,
        "scheduling": "interval",
    },
    "rq": {"task_backend": "rq"},
    "rq-cpu-interval-monitoring": {
        "task_backend": "rq",
        "cpu_heavy": True,
        "scheduling": "interval",
        "monitoring": True,
    },
    "rq-cron-no-examples": {"task_backend": "rq", "scheduling": "cron", "include_examples": False},
    "celery-redis": {"task_backend": "celery", "celery_broker": "redis"},
    "celery-redis-monitoring-cron": {
        "task_backend": "celery",
        "celery_broker": "redis",
        "monitoring": True,
        "scheduling": "cron",
    },
    "celery-rabbitmq": {"task_backend": "celery", "celery_broker": "rabbitmq"},
    "celery-rabbitmq-cpu-interval-monitoring": {
        "task_backend": "celery",
        "celery_broker": "rabbitmq",
        "cpu_heavy": True,
        "scheduling": "interval",
        "monitoring": True,
    },
}

#: Variables the manifests may set that config.py does not read: the servers' own.
STANDARD_ENV = re.compile(r"^(UVICORN|FLOWER)_[A-Z_]+$")
#: Pod-level settings every pod has.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


class Rendered:
    def __init__(self, project: Path, package: str, answers: dict[str, Any]) -> None:
        self.project = project
        self.package = package
        self.answers = answers
        self.dir = project / "deploy/kubernetes"
        self.kustomization = yaml.safe_load((self.dir / "kustomization.yaml").read_text())
        self.files = {
            name: [d for d in yaml.safe_load_all((self.dir / name).read_text()) if d]
            for name in self.kustomization["resources"]
        }
        self.docs = [d for docs in self.files.values() for d in docs]

    def kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in self.docs if d["kind"] == kind}

    @property
    def tier(self) -> str:
        return str(self.answers["task_backend"])


@pytest.fixture(scope="module", params=list(CASES))
def rendered(request: pytest.FixtureRequest, copie_session: Any) -> Rendered:
    answers = {"project_name": "Acme Orders", **CASES[request.param]}
    result = copie_session.copy(extra_answers=answers)
    assert result.exit_code == 0, result.exception
    return Rendered(result.project_dir, result.answers["package_name"], answers)


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.render
def test_every_manifest_is_listed_and_valid(rendered: Rendered, tmp_path: Path) -> None:
    # kustomization.yaml lists exactly the files there are (a forgotten one is never applied).
    on_disk = {p.name for p in rendered.dir.iterdir()} - {"kustomization.yaml"}
    assert set(rendered.kustomization["resources"]) == on_disk
    # pre-commit's check-yaml, end-of-file-fixer and trailing-whitespace would pass.
    config = yaml.safe_load((rendered.project / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert "--allow-multiple-documents" in hooks["check-yaml"].get("args", [])
    for path in rendered.dir.iterdir():
        text = path.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), path.name
        assert not [line for line in text.splitlines() if line != line.rstrip()], path.name

    core = [d for d in rendered.docs if not d["apiVersion"].startswith("keda.sh/")]
    keda = [d for d in rendered.docs if d["apiVersion"].startswith("keda.sh/")]
    # Only autoscaling.yaml needs KEDA's CRDs, so it alone is left out without KEDA.
    autoscaling = rendered.files.get("autoscaling.yaml", [])
    assert all(d["apiVersion"].startswith("keda.sh/") for d in autoscaling)
    assert bool(keda) == (rendered.tier != "background_tasks")

    paths = []
    for i, doc in enumerate(core):
        path = tmp_path / f"core-{i}-{doc['kind']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(str(path))
    run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, "--quiet", *paths],
        cwd=tmp_path,
    )
    if keda:
        paths = []
        for i, doc in enumerate(keda):
            path = tmp_path / f"keda-{i}.json"
            path.write_text(json.dumps(doc))
            paths.append(str(path))
        run([str(BIN / "check-jsonschema"), "--schemafile", str(KEDA_SCHEMA), *paths], cwd=tmp_path)


@pytest.mark.render
def test_manifests_agree_with_the_project(rendered: Rendered) -> None:
    deployments = rendered.kind("Deployment")
    services = compose_services(rendered.project)
    app_services = {n for n, s in services.items() if s.get("image") == services["api"]["image"]}
    # The Deployments are the compose services that run the app's image, by name.
    assert set(deployments) == app_services

    settings = _settings_fields(rendered.project / rendered.package / "config.py")
    configmap = rendered.kind("ConfigMap")["app-settings"]["data"]
    assert set(configmap) <= settings, set(configmap) - settings
    image = f"{rendered.answers['project_name'].lower().replace(' ', '-')}:latest"
    assert [i["name"] for i in rendered.kustomization["images"]] == [image.split(":")[0]]

    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]
        # The selector picks this Deployment's pods.
        assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), name
        assert pod["spec"]["securityContext"].items() >= POD_SECURITY.items(), name
        (container,) = _containers(deployment)
        assert container["image"] == image, name
        assert container["securityContext"] == CONTAINER_SECURITY, name
        # Read-only root: /tmp is a volume of its own.
        assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"], name
        # The same command as the compose service (compose's `command` is the image's CMD,
        # as Kubernetes' `args`).
        compose = services[name]
        assert container["args"] == shlex.split(compose["command"]), name
        assert "command" not in container, name
        # Every variable set is read by config.py or by the server it configures, and no
        # value is inline where compose takes it from .env (secrets by reference only).
        env = _env(container)
        for var, entry in env.items():
            assert var in settings or STANDARD_ENV.match(var), (name, var)
            if "valueFrom" in entry:
                assert set(entry["valueFrom"]) == {"secretKeyRef"}, (name, var)
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "app-secrets", (name, var)
        assert container["envFrom"] == [{"configMapRef": {"name": "app-settings"}}], name
        compose_env = compose.get("environment", {})
        for var, value in compose_env.items():
            if str(value).startswith("${") and ":?" in str(value):  # a required secret
                assert env[var]["valueFrom"]["secretKeyRef"]["key"] == var, (name, var)
            elif var in ("WORKER_QUEUES", "WORKER_CONCURRENCY"):
                default = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", str(value))
                assert env[var]["value"] == default, (name, var)

    _check_api(rendered, deployments["api"])
    if rendered.tier == "background_tasks":
        assert set(deployments) == {"api"}
        assert deployments["api"]["spec"]["replicas"] == 1
        assert deployments["api"]["spec"]["strategy"] == {"type": "Recreate"}
        assert not rendered.kind("ScaledObject") and not rendered.kind("PodDisruptionBudget")
    else:
        _check_workers(rendered, deployments, services)
    if "scheduler" in deployments:
        scheduler = deployments["scheduler"]["spec"]
        assert scheduler["replicas"] == 1 and scheduler["strategy"] == {"type": "Recreate"}
    assert ("scheduler" in deployments) == (
        rendered.tier != "background_tasks" and rendered.answers.get("scheduling", "none") != "none"
    )
    if rendered.answers.get("monitoring"):
        _check_dashboard(rendered, deployments["dashboard"])

    # Services, PDBs and NetworkPolicies select the pods of a Deployment.
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for kind, selector in (
        ("Service", lambda d: d["spec"]["selector"]),
        ("PodDisruptionBudget", lambda d: d["spec"]["selector"]["matchLabels"]),
        ("NetworkPolicy", lambda d: d["spec"]["podSelector"]["matchLabels"]),
    ):
        for name, doc in rendered.kind(kind).items():
            matched = [labels for labels in pod_labels if selector(doc).items() <= labels.items()]
            assert len(matched) == 1, (kind, name)

    _check_no_secret_values(rendered)
    _check_readme(rendered)


def _check_api(rendered: Rendered, api: dict[str, Any]) -> None:
    (container,) = _containers(api)
    routes = _routes(rendered.project / rendered.package / "routes") | _routes(
        rendered.project / "vendor/tasktier/src/tasktier/http/routes"
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert ("GET", container[probe]["httpGet"]["path"]) in routes, probe
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert _env(container)["UVICORN_PORT"]["value"] == annotations["prometheus.io/port"]
    (service,) = rendered.kind("Service")["api"]["spec"]["ports"]
    assert rendered.kind("Service")["api"]["spec"]["type"] == "ClusterIP"
    assert service["targetPort"] == container["ports"][0]["name"]
    grace = api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(_env(container)["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"]["value"])
    # The operators' token by reference; the API's pods take connections on their port only.
    token = _env(container)["JOBS_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "app-secrets", "key": "JOBS_ADMIN_TOKEN"}
    policy = rendered.kind("NetworkPolicy")["api"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def _check_workers(
    rendered: Rendered, deployments: dict[str, Any], services: dict[str, Any]
) -> None:
    scaled = rendered.kind("ScaledObject")
    workers = {n for n in deployments if n.startswith("worker")}
    assert workers == {"worker", "worker-cpu"} if rendered.answers.get("cpu_heavy") else {"worker"}
    # One ScaledObject per worker Deployment; the API and the scheduler are never scaled.
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == workers
    assert set(rendered.kind("PodDisruptionBudget")) == {"api"} | workers
    auths = rendered.kind("TriggerAuthentication")
    declared = _declared_queues(rendered.project / rendered.package / "tasks")
    timeouts = _declared_timeouts(rendered.project / rendered.package / "tasks")
    configmap = rendered.kind("ConfigMap")["app-settings"]["data"]
    job_timeout = float(configmap["JOB_TIMEOUT_SECONDS"])
    rabbitmq = rendered.answers.get("celery_broker") == "rabbitmq"
    for scaled_object in scaled.values():
        spec = scaled_object["spec"]
        name = spec["scaleTargetRef"]["name"]
        deployment = deployments[name]
        assert "replicas" not in deployment["spec"], name  # KEDA's to set
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"], name
        (container,) = _containers(deployment)
        setting = _env(container).get("WORKER_QUEUES", {}).get("value", "")
        queues = [q.strip() for q in setting.split(",") if q.strip()] or sorted(declared)
        # The same queues as compose's service consumes.
        compose_queues = services[name].get("environment", {}).get("WORKER_QUEUES", "")
        assert setting == compose_queues, name
        listened = []
        for trigger in spec["triggers"]:
            assert trigger["authenticationRef"]["name"] in auths, name
            meta = trigger["metadata"]
            if rabbitmq:
                assert trigger["type"] == "rabbitmq"
                # The management API counts unacked (running) jobs too; AMQP does not.
                assert meta["protocol"] == "http" and meta["mode"] == "QueueLength"
                assert meta.get("excludeUnacknowledged", "false") == "false"
                listened.append(meta["queueName"])
            else:
                assert trigger["type"] == "redis"
                url_key = "REDIS_URL" if rendered.tier == "rq" else "CELERY_BROKER_URL"
                url = configmap[url_key]
                assert url == f"redis://{meta['address']}/{meta['databaseIndex']}", name
                prefix = "rq:queue:" if rendered.tier == "rq" else ""
                assert meta["listName"].startswith(prefix), name
                listened.append(meta["listName"].removeprefix(prefix))
        assert sorted(listened) == sorted(queues), name
        # Graceful stop: the grace period covers the longest job on these queues.
        longest = max([job_timeout, *(timeouts.get(q, 0) for q in queues)])
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= longest + 10, (name, grace, longest)
        # Compose gives the running job the same time or less.
        compose_grace = services[name]["stop_grace_period"]
        assert grace >= int(re.sub(r"\D", "", str(compose_grace).split(":-")[-1])), name
        # The startup probe is an exec probe (no HTTP server in a worker), no liveness probe.
        assert "exec" in container["startupProbe"] and "livenessProbe" not in container
        if rendered.tier == "celery":
            # Compose's healthcheck, run as a local process in tests/test_e2e_celery.py.
            check = services["worker"]["healthcheck"]["test"]
            assert check[0] == "CMD-SHELL", check
            probe = ["sh", "-c", check[1].replace("$$", "$")]
            assert container["startupProbe"]["exec"]["command"] == probe, name
    for auth in auths.values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "app-secrets"


def _check_dashboard(rendered: Rendered, dashboard: dict[str, Any]) -> None:
    (container,) = _containers(dashboard)
    port = container["ports"][0]["containerPort"]
    assert port == (5555 if rendered.tier == "celery" else 9181)
    assert rendered.kind("Service")["dashboard"]["spec"]["type"] == "ClusterIP"
    assert not rendered.kind("Ingress")
    policy = rendered.kind("NetworkPolicy")["dashboard"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"dashboard-access": "true"}}}]
    if rendered.tier == "celery":
        # Flower's health check answers without basic auth.
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"


def _check_no_secret_values(rendered: Rendered) -> None:
    text = "\n".join(p.read_text() for p in rendered.dir.iterdir())
    assert rendered.kind("Secret") == {}
    secretish = re.compile(r"PASS|SECRET|AUTH|TOKEN|KEY")
    for env_file in (".env.example", ".env"):
        path = rendered.project / env_file
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if "=" not in line or line.startswith("#"):
                continue
            name, value = line.split("=", 1)
            if secretish.search(name) and value:
                assert value not in text, f"{env_file}'s {name} is in deploy/kubernetes"


def _check_readme(rendered: Rendered) -> None:
    """README.md's `kubectl create secret` names every key the manifests reference."""
    readme = (rendered.project / "README.md").read_text()
    assert "deploy/kubernetes" in readme and "kubectl apply -k deploy/kubernetes" in readme
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for d in rendered.kind("Deployment").values()
        for c in _containers(d)
        for e in c.get("env", [])
        if "valueFrom" in e
    } | {
        ref["key"]
        for a in rendered.kind("TriggerAuthentication").values()
        for ref in a["spec"]["secretTargetRef"]
    }
    if keys:
        command = readme.split("kubectl create secret generic app-secrets", 1)[1].split("```")[0]
        assert set(re.findall(r"--from-literal=([A-Z_]+)=", command)) == keys
    else:
        assert "kubectl create secret" not in readme


def _settings_fields(config: Path) -> set[str]:
    """The variables the project's ``Settings`` reads: its own fields and those of the
    runtime's settings classes it extends (``vendor/tasktier/.../settings.py``)."""
    runtime = config.parent.parent / "vendor/tasktier/src/tasktier/settings.py"
    classes = {
        n.name: n
        for source in (runtime, config)
        for n in ast.parse(source.read_text()).body
        if isinstance(n, ast.ClassDef)
    }
    fields, pending = set(), ["Settings"]
    while pending:
        cls = classes.get(pending.pop())
        if cls is None:  # pydantic's BaseSettings
            continue
        fields |= {
            n.target.id.upper()
            for n in cls.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        pending += [b.id for b in cls.bases if isinstance(b, ast.Name)]
    return fields


def _routes(routes: Path) -> set[tuple[str, str]]:
    """(method, path) of every route decorator in ``routes/*.py`` (the project's or the
    runtime's), with the router's prefix."""
    found = set()
    for module in routes.glob("*.py"):
        tree = ast.parse(module.read_text())
        prefix = ""
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "APIRouter"
                and (kw := [k for k in node.keywords if k.arg == "prefix"])
            ):
                prefix = ast.literal_eval(kw[0].value)
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                for dec in node.decorator_list:
                    if (
                        isinstance(dec, ast.Call)
                        and isinstance(dec.func, ast.Attribute)
                        and dec.func.attr in ("get", "post", "delete", "put", "patch")
                        and dec.args
                    ):
                        path = ast.literal_eval(dec.args[0])
                        found.add((dec.func.attr.upper(), prefix + path))
    return found


def _task_decorators(tasks: Path) -> list[dict[str, Any]]:
    found = []
    for module in tasks.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                for dec in node.decorator_list:
                    name = getattr(dec.func, "id", None) if isinstance(dec, ast.Call) else None
                    if name == "task" or getattr(dec, "id", None) == "task":
                        keywords = dec.keywords if isinstance(dec, ast.Call) else []
                        found.append({k.arg: ast.literal_eval(k.value) for k in keywords})
    return found


def _declared_queues(tasks: Path) -> set[str]:
    return {d.get("queue", "default") for d in _task_decorators(tasks)} | {"default"}


def _declared_timeouts(tasks: Path) -> dict[str, float]:
    timeouts: dict[str, float] = {}
    for d in _task_decorators(tasks):
        if "timeout" in d:
            queue = d.get("queue", "default")
            timeouts[queue] = max(timeouts.get(queue, 0), float(d["timeout"]))
    return timeouts


@pytest.mark.render
def test_the_validators_reject_broken_manifests(copie_session: Any, tmp_path: Path) -> None:
    """The checks above can fail: a misspelt field, an AMQP trigger (no unacked count), a
    ScaledObject without its target, an inline password."""
    answers = {"project_name": "Acme Orders", **CASES["celery-rabbitmq"]}
    result = copie_session.copy(extra_answers=answers)
    assert result.exit_code == 0, result.exception
    rendered = Rendered(result.project_dir, result.answers["package_name"], answers)

    deployment = json.loads(json.dumps(rendered.kind("Deployment")["worker"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["comand"] = ["sleep"]
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment))
    refused = run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path)],
        cwd=tmp_path,
        check=False,
    )
    assert refused.returncode != 0 and "comand" in refused.stdout + refused.stderr

    scaled = rendered.kind("ScaledObject")["worker"]
    auth = rendered.kind("TriggerAuthentication")["rabbitmq"]
    broken: dict[str, dict[str, Any]] = {}
    amqp = json.loads(json.dumps(scaled))
    amqp["spec"]["triggers"][0]["metadata"]["protocol"] = "amqp"
    broken["amqp"] = amqp
    untargeted = json.loads(json.dumps(scaled))
    del untargeted["spec"]["scaleTargetRef"]
    broken["untargeted"] = untargeted
    inline = json.loads(json.dumps(auth))
    inline["spec"]["secretTargetRef"][0] = {"parameter": "password", "value": "hunter2"}
    broken["inline"] = inline
    for label, doc in broken.items():
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(doc))
        refused = run(
            [str(BIN / "check-jsonschema"), "--schemafile", str(KEDA_SCHEMA), str(path)],
            cwd=tmp_path,
            check=False,
        )
        assert refused.returncode != 0, label
    path = tmp_path / "good.json"
    path.write_text(json.dumps(scaled))
    run([str(BIN / "check-jsonschema"), "--schemafile", str(KEDA_SCHEMA), str(path)], cwd=tmp_path)
