"""The Kubernetes manifests: rendered as kustomize renders them, valid against the API schemas, and
holding the invariants deploy/README.md promises (private ports, probes on heartbeats, non-root)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.deploy.manifests import K8S, OVERLAYS, by_key, render, render_kubectl, render_python

WORKLOADS = ("Deployment", "StatefulSet", "Job")
PRIVATE = {5557: "worker", 8000: "server"}   # port -> the only component that may reach it


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(K8S / "overlays" / request.param)


def _pods(objects):
    """(workload, pod spec) of every workload."""
    return [(o, o["spec"]["template"]["spec"]) for o in objects if o["kind"] in WORKLOADS]


def _train_job() -> list[dict]:
    return [o for o in yaml.safe_load_all((K8S / "train-job.yaml").read_text()) if o]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: the Python renderer "
                    "alone renders the overlays (it is compared with kubectl where kubectl exists)")
@pytest.mark.parametrize("name", OVERLAYS)
def test_python_renderer_matches_kubectl(name):
    folder = K8S / "overlays" / name
    assert by_key(render_python(folder)) == by_key(render_kubectl(folder))


@pytest.mark.skipif(importlib.util.find_spec("kubernetes_validate") is None,
                    reason="kubernetes-validate is not installed (the dev extra has it)")
def test_manifests_validate_strictly_against_the_kubernetes_schemas(tmp_path):
    files = []
    for name in OVERLAYS:
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(yaml.safe_dump_all(render(K8S / "overlays" / name)))
    files.append(K8S / "train-job.yaml")
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_graph_is_complete(overlay):
    name, objects = overlay
    kinds = by_key(objects)
    expected = {("Deployment", "server"), ("Deployment", "broker"), ("StatefulSet", "worker"),
                ("StatefulSet", "recorder"), ("Service", "server"), ("Service", "broker"),
                ("NetworkPolicy", "default-deny-ingress"), ("Namespace", "bodytalk")}
    expected |= {("Deployment", "llm"), ("Service", "llm")} if name == "gpu" else {("Deployment", "capture")}
    assert expected <= set(kinds), expected - set(kinds)
    assert all(o["metadata"].get("namespace") == "bodytalk" for o in objects if o["kind"] != "Namespace")
    recorder = kinds["StatefulSet", "recorder"]["spec"]
    assert recorder["volumeClaimTemplates"][0]["metadata"]["name"] == "sessions"
    mounts = recorder["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "sessions", "mountPath": "/sessions"} in mounts


def test_selectors_match_labels_and_services_find_pods(overlay):
    _, objects = overlay
    pod_labels = []
    for workload, _ in _pods(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), workload["metadata"]["name"]
        pod_labels.append(labels)
    for svc in (o for o in objects if o["kind"] == "Service"):
        selector = svc["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pod_labels), f"Service {svc['metadata']['name']} selects no pod"
    for sts in (o for o in objects if o["kind"] == "StatefulSet"):
        assert ("Service", sts["spec"]["serviceName"]) in by_key(objects)


def test_processes_are_probed_on_their_heartbeats(overlay):
    name, objects = overlay
    kinds = by_key(objects)
    server = kinds["Deployment", "server"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = server[probe]["exec"]["command"]
        assert command[:2] == ["bodytalk", "health"], probe
        assert command[command.index("--component") + 1] == "server"
        assert float(command[command.index("--max-age") + 1]) == 5
        assert server[probe]["timeoutSeconds"] > 5   # the probe may wait --max-age for a heartbeat
    start = server["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 300   # model load before liveness counts
    broker = kinds["Deployment", "broker"]["spec"]["template"]["spec"]["containers"][0]
    assert "--component" in broker["livenessProbe"]["exec"]["command"]
    worker = kinds["StatefulSet", "worker"]["spec"]["template"]["spec"]["containers"][0]
    assert "bodytalk health" in " ".join(worker["readinessProbe"]["exec"]["command"])


def test_vllm_runs_on_one_gpu_per_replica_with_slow_start(overlay):
    name, objects = overlay
    if name != "gpu":
        assert not any(o["metadata"]["name"] == "llm" for o in objects)
        return
    llm = by_key(objects)["Deployment", "llm"]["spec"]
    pod = llm["template"]["spec"]
    vllm = pod["containers"][0]
    args = vllm["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "1" and llm["replicas"] >= 2   # SmolLM2: 9 heads
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    shm = {v["name"]: v for v in pod["volumes"]}[next(m["name"] for m in vllm["volumeMounts"] if m["mountPath"] == "/dev/shm")]
    assert shm["emptyDir"]["medium"] == "Memory"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert vllm[probe]["httpGet"]["path"] == "/health"
    assert vllm["startupProbe"]["periodSeconds"] * vllm["startupProbe"]["failureThreshold"] >= 600
    assert {e["name"] for e in vllm["env"]} >= {"VLLM_API_KEY"}
    assert "secretKeyRef" in vllm["env"][0]["valueFrom"]
    server = by_key(objects)["Deployment", "server"]["spec"]["template"]["spec"]["containers"][0]
    cmd = server["command"]
    assert cmd[cmd.index("--backend") + 1] == "vllm" and cmd[cmd.index("--vllm-url") + 1] == "http://llm:8000"
    assert "VLLM_API_KEY" in {e["name"] for e in server["env"]}


def test_network_policies_keep_the_prompt_ports_private(overlay):
    name, objects = overlay
    policies = [o["spec"] for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["podSelector"] == {} and "Ingress" in p["policyTypes"] and not p.get("ingress")]
    assert deny, "no default-deny ingress policy"
    ports_in_use = {p.get("containerPort") for w, pod in _pods(objects) for c in pod["containers"] for p in c.get("ports", [])}
    for port, only in PRIVATE.items():
        if port not in ports_in_use:
            continue
        rules = [rule for p in policies for rule in p.get("ingress", [])
                 if any(q.get("port") == port for q in rule.get("ports", []))]
        assert rules, f"no policy names port {port}"
        for rule in rules:   # every rule that opens the port names its one allowed component
            sources = rule.get("from")
            assert sources, f"port {port} is open to every source"
            assert all(s.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == only
                       for s in sources), f"port {port} is open beyond the {only} pods"
    assert (8000 in ports_in_use) == (name == "gpu")


@pytest.mark.parametrize("objects", [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu"),
                                     pytest.param("train", id="train-job")])
def test_pods_run_as_non_root_on_pinned_images_with_the_keys(objects):
    objects = _train_job() if objects == "train" else render(K8S / "overlays" / objects)
    for workload, pod in _pods(objects):
        where = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, where
        assert pod["automountServiceAccountToken"] is False, where
        for c in pod["containers"]:
            image = c["image"]
            assert ":" in image.split("/")[-1] and not image.endswith(":latest"), f"{where}: image {image} is not pinned"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert "memory" in c["resources"]["limits"], where
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if c["name"] in ("server", "worker", "broker", "recorder", "capture"):
                # The CurveZMQ keys (issue 16): the Secret mounted where $BODYTALK_KEYS points.
                mount = next(m for m in c["volumeMounts"] if m["mountPath"] == env["BODYTALK_KEYS"])
                volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
                assert volume["secret"]["secretName"] == "bodytalk-curve-keys" and mount["readOnly"], where


def test_train_job_runs_torchrun_on_every_node():
    job = by_key(_train_job())["Job", "train"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert c["command"][0] == "torchrun" and "--node-rank=$(JOB_COMPLETION_INDEX)" in c["command"]
    assert "--nnodes=$(NNODES)" in c["command"] and int(env["NNODES"]) == spec["completions"]
    assert int(env["NPROC_PER_NODE"]) == c["resources"]["limits"]["nvidia.com/gpu"]
    assert c["command"][c["command"].index("-m") + 1] == "bodytalk.train.run"
    assert pod["subdomain"] == "train" and ("Service", "train") in by_key(_train_job())
