"""Deployment files: the compose file against the Compose Specification schema, the Kubernetes manifests against
the API schemas (kubernetes-validate), and the properties a rolling update and autoscaling depend on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agent.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == kind}


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


# compose ----------------------------------------------------------------------------------------------------


def test_compose_validates_against_the_compose_specification():
    assert compose_errors(compose()) == []


def test_the_schema_check_catches_mistakes():
    doc = compose()
    doc["services"]["controller-a"]["restart_policy"] = "always"  # not a compose key
    doc["services"]["postgres"]["healthcheck"]["retries"] = "ten"
    errors = compose_errors(doc)
    assert any("restart_policy" in e for e in errors) and any("retries" in e for e in errors)


def test_compose_services_are_supervised_and_keep_secrets_in_the_env_file():
    services = compose()["services"]
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always", "no"), name
        if name != "migrate":
            assert svc["restart"] == "unless-stopped" and "healthcheck" in svc or name == "callbacks", name
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"(PASSWORD|SECRET)\s*[:=]\s*\S", text), "secrets belong in deploy/.env"
    for name in ("freeswitch", "postgres", "grafana", "controller-a", "controller-b", "tts"):
        assert ".env" in services[name]["env_file"], name
    assert services["freeswitch"]["image"].startswith("${FREESWITCH_IMAGE:?")
    for gpu in ("asr", "tts"):
        (device,) = services[gpu]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert any(v.endswith(":/models:ro") for v in services[gpu]["volumes"])  # weights mounted, never baked


def test_compose_controllers_drain_before_docker_kills_them():
    services = compose()["services"]
    for name, config in (("controller-a", "callagent.yaml"), ("controller-b", "callagent-b.yaml")):
        cfg = load_config(DEPLOY / "config" / config)
        svc = services[name]
        assert config in " ".join(svc["command"])
        grace = int(svc["stop_grace_period"].rstrip("s"))
        assert grace > cfg.controller.drain_timeout_s
        port = cfg.controller.metrics_listen[1]
        assert f"127.0.0.1:{port}/ready" in " ".join(svc["healthcheck"]["test"])
    a, b = (load_config(DEPLOY / "config" / c).controller for c in ("callagent.yaml", "callagent-b.yaml"))
    dialplan = (REPO / "dialplan" / "public" / "00_callagent.xml").read_text()
    assert f"data=\"{a.listen[0]}:{a.listen[1]}|{b.listen[0]}:{b.listen[1]} async full\"" in dialplan
    assert len({a.listen, b.listen, a.metrics_listen, b.metrics_listen}) == 4


def test_prometheus_scrapes_every_ops_port_and_loads_the_alert_rules():
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for config in ("callagent.yaml", "callagent-b.yaml"):
        cfg = load_config(DEPLOY / "config" / config)
        assert f"host.docker.internal:{cfg.controller.metrics_listen[1]}" in targets
        assert f"host.docker.internal:{cfg.worker.metrics_listen[1]}" in targets
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert "../ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


# Dockerfiles ------------------------------------------------------------------------------------------------


def stages(path: Path) -> list[str]:
    text = re.sub(r"\\\n", " ", path.read_text())
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_agent_image_is_multi_stage_slim_non_root_without_compilers():
    parts = stages(DEPLOY / "Dockerfile")
    assert len(parts) >= 2 and "slim" in (DEPLOY / "Dockerfile").read_text()
    final = parts[-1]
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|\bmake\b|-dev\b", final)
    users = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "COPY --from=build" in final and 'ENTRYPOINT ["callagent"]' in final


def test_gpu_images_mount_weights_and_run_unprivileged():
    text = (DEPLOY / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM .* AS asr$", text, flags=re.M) and re.search(r"^FROM .* AS tts$", text, flags=re.M)
    assert text.count('VOLUME ["/models"]') == 2
    assert not re.search(r"^(COPY|ADD) .*(safetensors|\.bin|models/)", text, flags=re.M)
    for part in stages(DEPLOY / "Dockerfile.gpu"):
        if part.split()[2] in ("asr", "tts"):
            assert re.findall(r"^USER (\S+)", part, flags=re.M)[-1] not in ("root", "0")


# Kubernetes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,doc", manifests(), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_manifest_validates_against_the_kubernetes_api(name, doc):
    if doc["kind"] == "Kustomization":
        listed = set(doc["resources"])
        assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_a_broken_manifest():
    edge = json.loads(json.dumps(by_kind("Deployment")["callagent-edge"]))
    edge["spec"]["template"]["spec"]["terminationGracePeriod"] = 360  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(edge, K8S_VERSION, strict=True)


def k8s_config() -> Any:
    data = by_kind("ConfigMap")["callagent-config"]["data"]["callagent.yaml"]
    from agent.config import parse_config

    return parse_config(yaml.safe_load(data))


def test_edge_pod_drains_on_rolling_updates():
    edge = by_kind("Deployment")["callagent-edge"]
    spec = edge["spec"]["template"]["spec"]
    cfg = k8s_config()
    assert spec["terminationGracePeriodSeconds"] > cfg.controller.drain_timeout_s
    c = containers(edge)["controller"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["readinessProbe"]["failureThreshold"] == 1
    port = {p["name"]: p["containerPort"] for p in c["ports"]}[c["readinessProbe"]["httpGet"]["port"]]
    assert port == cfg.controller.metrics_listen[1] and cfg.controller.metrics_listen[0] == "0.0.0.0"
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "callagent" and "drain" in pre
    assert float(pre[pre.index("--wait") + 1]) < spec["terminationGracePeriodSeconds"]
    fs = containers(edge)["freeswitch"]["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "fsctl pause inbound" in fs and "show calls count" in fs
    assert edge["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # FreeSWITCH in the pod reaches the controller and the worker on loopback.
    assert cfg.controller.listen[0] == "127.0.0.1" and cfg.controller.fork_url.startswith("ws://127.0.0.1:")
    assert cfg.callbacks.agent_socket == f"127.0.0.1:{cfg.controller.listen[1]}"


def test_gpu_deployments_claim_a_gpu_and_wait_for_the_model():
    deployments = by_kind("Deployment")
    probes = {"asr": "/health", "tts": "/healthz"}
    for name, path in probes.items():
        (c,) = containers(deployments[name]).values()
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert c["readinessProbe"]["httpGet"]["path"] == path
        assert any(m["mountPath"] == "/models" and m.get("readOnly") for m in c["volumeMounts"])
    tts_cfg = by_kind("ConfigMap")["callagent-config"]["data"]["tts-worker.yaml"]
    assert "http://0.0.0.0:8091" in tts_cfg  # the worker binds where worker_url points
    assert k8s_config().tts.worker_url == "http://tts.callagent.svc:8091"


def test_autoscaling_reads_metrics_the_adapter_publishes():
    rules = yaml.safe_load(by_kind("ConfigMap")["callagent-adapter-config"]["data"]["config.yaml"])["rules"]
    published = {r["name"]["as"] for r in rules}
    for rule in rules:
        series = rule["seriesQuery"].split("{")[0]
        assert re.match(rule["name"]["matches"], series)
    hpas = by_kind("HorizontalPodAutoscaler")
    targets = {}
    for hpa in hpas.values():
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] in published
        targets[hpa["spec"]["scaleTargetRef"]["name"]] = metric["pods"]["metric"]["name"]
    assert targets == {"callagent-edge": "callagent_calls_active", "asr": "vllm_num_requests_waiting"}
    assert "callagent_calls_active" in (REPO / "agent" / "ops" / "metrics.py").read_text()
    edge_target = float(hpas["callagent-edge"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"])
    assert edge_target < k8s_config().controller.max_calls  # scale out before a pod is full


def test_every_disruption_budget_selects_pods_that_exist():
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind("Deployment").values()]
    for name, pdb in by_kind("PodDisruptionBudget").items():
        want = pdb["spec"]["selector"]["matchLabels"]
        assert any(want.items() <= lab.items() for lab in labels), name


def test_kustomize_builds_every_manifest():
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=True)
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(built) == sum(1 for _, d in manifests() if d["kind"] != "Kustomization")
    assert all(d["metadata"].get("namespace") == "callagent" for d in built if d["kind"] != "Namespace")


def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make system-packages installs it)")
    rules = REPO / "ops" / "prometheus" / "alerts.yml"
    if not rules.exists():
        pytest.skip("ops/prometheus/alerts.yml is not in this tree")
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace("/etc/prometheus/alerts.yml", str(rules))
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
