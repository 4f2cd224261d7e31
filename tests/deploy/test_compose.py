"""deploy/compose.yaml and .env.example: valid against the compose spec, and holding what
deploy/README.md promises (profiles, restart policies, healthchecks, private ports, pinned images)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.deploy.manifests import COMPOSE, DEPLOY, ENV_EXAMPLE, compose, interpolate, read_env_file, variables

PUBLISHED = {5555: "capture", 5556: "server", 8080: "dashboard"}   # container ports a host may publish, and by whom
PRIVATE = {5557, 5559, 8000}                    # prompt work, the broker's bus, vLLM


def _has_compose_plugin() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(importlib.util.find_spec("check_jsonschema") is None,
                    reason="check-jsonschema is not installed (the dev extra has it)")
def test_compose_file_follows_the_compose_spec():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not _has_compose_plugin(), reason="the docker compose plugin is not installed here")
@pytest.mark.parametrize("profile", ["cpu", "gpu", "sensor"])
def test_docker_compose_config_accepts_every_profile(profile):
    proc = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE),
                           "--profile", profile, "config", "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_env_example_lists_exactly_the_variables_compose_reads():
    read = variables(COMPOSE.read_text())
    listed = set(read_env_file())
    assert read == listed, f"missing from .env.example: {sorted(read - listed)}; unused: {sorted(listed - read)}"


def test_profiles_hold_their_processes():
    services = compose()["services"]
    members = {p: {name for name, s in services.items() if p in s.get("profiles", [])} for p in ("cpu", "gpu", "sensor")}
    assert members["cpu"] == {"capture", "broker", "worker", "server", "recorder", "dashboard"}
    assert members["gpu"] == {"broker", "worker", "server-gpu", "llm", "recorder", "dashboard"}
    assert members["sensor"] == {"capture"}
    # The gpu server answers to `server`, as the workers and the recorder call it.
    assert "server" in services["server-gpu"]["networks"]["default"]["aliases"]


def test_every_service_restarts_and_is_health_checked():
    for name, service in compose()["services"].items():
        assert service["restart"] in ("unless-stopped", "always"), name
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and service["healthcheck"]["start_period"], name
        if name not in ("llm", "recorder", "dashboard"):   # no status heartbeat: HTTP, file growth, HTTP
            assert test[1:3] == ["bodytalk", "health"], name


def test_only_the_capture_and_event_ports_reach_the_host():
    env = read_env_file()
    for name, service in compose()["services"].items():
        for mapping in interpolate(service.get("ports", []), env):
            host, _, container = mapping.rpartition(":")
            assert PUBLISHED.get(int(container)) == name.removesuffix("-gpu"), f"{name} publishes {mapping}"
            assert host.split(":")[0] == "127.0.0.1", f"{name}: published beyond loopback by default ({mapping})"
            assert int(container) not in PRIVATE


def test_images_are_pinned_and_sessions_persist():
    spec = compose()
    env = read_env_file()
    for name, service in spec["services"].items():
        image = interpolate(service["image"], env)
        assert image.rsplit(":", 1)[1] not in ("", "latest"), f"{name}: {image}"
        assert service["build"]["target"] in ("cpu", "sensor", "gpu"), name
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert "sessions" in spec["volumes"]
    assert "sessions:/sessions" in spec["services"]["recorder"]["volumes"]


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET $$(date)", env) == "x d  d x $(date)"
    with pytest.raises(ValueError, match="UNSET"):
        interpolate("${UNSET:?needed}", env)
    assert variables("${A:-x} $B $$C ${D}") == {"A", "B", "D"}
