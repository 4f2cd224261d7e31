"""The OpenAI-compatible vLLM server mode: the command `python -m bodytalk.model.llm.vllm CKPT` prints,
started on loopback, read through load_model(backend="vllm") against transformers (float32)."""
from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bodytalk.model.text import grounding
from bodytalk.model.inference import EmotionModel
from bodytalk.model.llm.hf import SkeletonLLM
from bodytalk.model.llm.vllm import VLLMConfig
from bodytalk.model.llm.vllm_client import Server
from bodytalk.model.registry import load_model
from tests.vllm.conftest import assert_same_readings, emotion_model, windows

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def checkpoint(model_cfg, tmp_path_factory):
    return emotion_model(model_cfg, None).save(tmp_path_factory.mktemp("ckpt") / "untrained")


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """The printed command (+ CPU-friendly flags) on a free loopback port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    printed = subprocess.run([sys.executable, "-m", "bodytalk.model.llm.vllm", str(checkpoint), "--port", str(port)],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert printed.startswith("python -m vllm.entrypoints.openai.api_server") and "--host 127.0.0.1" in printed
    command = [sys.executable, *shlex.split(printed)[1:], "--enforce-eager", "--max-model-len", "2048",
               "--kv-cache-memory-bytes", str(2**30)]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the vLLM server did not come up; its log ends:\n{log.read_text()[-3000:]}")
                time.sleep(2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def models(server, checkpoint, model_cfg):
    ours = load_model(checkpoint, backend="vllm", vllm=VLLMConfig(url=server))
    return ours, emotion_model(model_cfg, SkeletonLLM.load(model_cfg.llm))


def test_server_readings_match_transformers(models):
    ours, theirs = models
    assert isinstance(ours, EmotionModel) and ours.llm.transport.url.startswith("http://127.0.0.1:")
    wins = windows(3)
    assert_same_readings(ours.recognise(wins, path="llm"), theirs.recognise(wins, path="llm"))


def test_server_explains_and_streams(models):
    ours, theirs = models
    wins, labels = windows(2, seed=2), ["sad", "happy"]
    got = ours.explain(wins, labels, max_new_tokens=20, drop_unsupported=False)
    assert [t for t, _ in got] == [t for t, _ in theirs.explain(wins, labels, max_new_tokens=20,
                                                                drop_unsupported=False)]
    pieces = list(ours.explain_stream(wins[0], "sad", max_new_tokens=20))
    # explain() trims a clause cut off by the token limit; the raw pieces are not trimmed
    assert len(pieces) > 1 and grounding.trim_unfinished("".join(pieces).strip()) == got[0][0]


def test_a_server_serving_other_weights_is_refused(server):
    """The server must serve this checkpoint's weights (their folder name, hash included): our
    embedding matrix has to be the one its model was built with."""
    with pytest.raises(ValueError, match="not 'smollm2-135m-lora-0123'"):
        Server(VLLMConfig(url=server), "smollm2-135m-lora-0123")
