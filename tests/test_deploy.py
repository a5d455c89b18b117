"""deploy/: every manifest parses and validates, the image definition lints and pins what the project pins.

Docker itself does not run on the test machines (no engine), so the image is
checked by its definition: hadolint, and the versions it installs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
CRD_FIELDS = json.loads((REPO / "tests" / "data" / "kuberay" / "crd_fields.json").read_text())
K8S_VERSION = "1.33.0"


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _ray_specs() -> list[tuple[str, dict]]:
    """(where, RayCluster spec) for the RayCluster and the cluster inside each RayJob."""
    specs = []
    for name, doc in _documents():
        if doc["kind"] == "RayCluster":
            specs.append((name, doc["spec"]))
        elif doc["kind"] == "RayJob":
            specs.append((f"{name} rayClusterSpec", doc["spec"]["rayClusterSpec"]))
        elif doc["kind"] == "RayService":
            specs.append((f"{name} rayClusterConfig", doc["spec"]["rayClusterConfig"]))
    return specs


def _templates() -> list[tuple[str, dict]]:
    out = []
    for where, spec in _ray_specs():
        out.append((f"{where} head", spec["headGroupSpec"]["template"]))
        out += [(f"{where} {g['groupName']}", g["template"]) for g in spec.get("workerGroupSpecs", [])]
    for name, doc in _documents():
        if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
            out.append((f"{name} submitter", doc["spec"]["submitterPodTemplate"]))
    return out


def _check_fields(obj: dict, kind: str, where: str) -> list[str]:
    rule = CRD_FIELDS[kind]
    problems = [f"{where}: unknown field {k!r} for {kind}" for k in obj if k not in rule["fields"]]
    problems += [f"{where}: {kind} needs {k!r}" for k in rule["required"] if k not in obj]
    for field, allowed in rule.get("enums", {}).items():
        if field in obj and obj[field] not in allowed:
            problems.append(f"{where}: {field}={obj[field]!r} is not one of {allowed}")
    return problems


def test_every_manifest_parses_and_names_its_kind():
    docs = _documents()
    assert {d["kind"] for _, d in docs} >= {"RayCluster", "RayJob", "RayService", "NetworkPolicy"}
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), name
    yaml.safe_load((DEPLOY / "cluster.yaml").read_text())


def test_core_kubernetes_objects_validate_against_their_schemas():
    import kubernetes_validate

    core = [(n, d) for n, d in _documents() if not d["apiVersion"].startswith("ray.io/")]
    assert core
    for _name, doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # The pod templates inside the KubeRay objects are core PodTemplateSpecs: validate each as a Pod.
    for where, template in _templates():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata", {}) | {"name": "t"},
               "spec": template["spec"]}
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc}")


def test_kuberay_objects_use_only_fields_of_the_crds():
    problems = []
    for name, doc in _documents():
        if doc["kind"] == "RayJob":
            problems += _check_fields(doc["spec"], "RayJob.spec", name)
        if doc["kind"] == "RayService":
            problems += _check_fields(doc["spec"], "RayService.spec", name)
            problems += _check_fields(doc["spec"].get("upgradeStrategy", {}), "RayServiceUpgradeStrategy", name)
    for where, spec in _ray_specs():
        problems += _check_fields(spec, "RayCluster.spec", where)
        problems += _check_fields(spec["headGroupSpec"], "HeadGroupSpec", f"{where} head")
        problems += _check_fields(spec.get("autoscalerOptions", {}), "AutoscalerOptions", f"{where} autoscaler")
        for group in spec.get("workerGroupSpecs", []):
            problems += _check_fields(group, "WorkerGroupSpec", f"{where} {group.get('groupName')}")
            assert all(isinstance(v, str) for v in group["rayStartParams"].values()), where
    assert not problems, "\n".join(problems)


def test_clusters_have_a_cpu_head_and_an_autoscaling_gpu_group_with_shared_memory():
    for where, spec in _ray_specs():
        assert spec["enableInTreeAutoscaling"] is True, where
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in head["resources"].get("limits", {}), where
        groups = spec["workerGroupSpecs"]
        gpu = [g for g in groups if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]]
        assert gpu and all(g["minReplicas"] < g["maxReplicas"] for g in gpu), where
    for where, template in _templates():
        spec = template["spec"]
        for container in spec["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"], where
        if "submitter" in where:
            continue
        shm = [v for v in spec["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
        mounts = {m["name"] for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm"}
        assert shm and shm[0]["name"] in mounts, f"{where}: no memory-backed /dev/shm for the object store"


def test_every_ray_container_authenticates_and_nothing_is_exposed():
    for where, template in _templates():
        for container in template["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", where
            token = env.get("RAY_AUTH_TOKEN", {})
            assert "secretKeyRef" in token.get("valueFrom", {}) and "value" not in token, where
    for where, spec in _ray_specs():
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", where
        assert not head.get("enableIngress", False), where
        env = {e["name"] for e in spec["autoscalerOptions"].get("env", [])}
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= env, f"{where}: the autoscaler must authenticate too"
    kinds = {d["kind"] for _, d in _documents()}
    assert not kinds & {"Ingress", "Route"}
    for _, doc in _documents():
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP"
        if doc["kind"] == "RayService":
            assert doc["spec"]["serveService"]["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_the_rayservice_serves_what_framelab_serve_deploys():
    from framelab.toolkits.serving import application
    from framelab.toolkits.serving.deployment import DEPLOYMENT_NAME

    (name, service), = [(n, d) for n, d in _documents() if d["kind"] == "RayService"]
    service_svc = service["spec"]["serveService"]
    import kubernetes_validate

    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", **service_svc}, K8S_VERSION, strict=True)
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    port = config["http_options"]["port"]
    assert config["http_options"]["host"] == "0.0.0.0"  # inside the pod; the Service is what is reachable
    assert port in {p["port"] for p in service_svc["spec"]["ports"]}
    for where, template in _templates():
        if "rayservice" in where:
            ports = {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
            assert port in ports, f"{where}: Serve's proxy port {port} is not a container port"
    for app in config["applications"]:
        module, attr = app["import_path"].split(":")
        assert module == "framelab.toolkits.serving" and attr == "application", app["import_path"]
        application(app["args"])  # the builder accepts the arguments as written (it loads nothing)
        assert [d["name"] for d in app["deployments"]] == [DEPLOYMENT_NAME]
        resources = app["deployments"][0]["ray_actor_options"]
        if app["args"].get("device") == "cuda":
            assert resources["num_gpus"] == 1, f"{name}: a cuda replica needs its GPU"


def test_the_launcher_config_authenticates_every_node_and_keeps_the_dashboard_private():
    config = yaml.safe_load((DEPLOY / "cluster.yaml").read_text())
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), key
    assert any(dest.endswith(".ray/auth_token") for dest in config["file_mounts"])
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "--shm-size" in " ".join(config["docker"]["run_options"])


def test_the_container_definition_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    done = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_image_installs_exactly_the_projects_pinned_versions():
    import tomllib

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    install = [line for line in dockerfile.splitlines() if "pip install" in line]
    # Every dependency comes from the lock, with the resolver off; framelab itself from its own wheel.
    assert any("--no-deps -r /tmp/requirements.lock" in line for line in install)
    assert all("--no-deps" in line for line in install)
    assert "COPY requirements.lock" in dockerfile and "pip check" in dockerfile
    # The image's Python is the lock's (3.11).
    assert re.search(r"python:3\.11[.\d]*-slim", dockerfile)
    lock = _lock()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in project:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            assert lock.get(name) == match.group(3), f"{name}: pyproject {match.group(3)}, lock {lock.get(name)}"
