"""Loopback end to end: synthetic capture -> tokenizer worker -> LLM server -> subscribers, as the
processes a deployment runs; and `bodytalk demo --headless`, the one-command version."""
import collections
import json
import re
import subprocess
import sys

import pytest

from bodytalk.client import Subscription
from bodytalk.model.constants import DEFAULT_LABELS
from bodytalk.model.registry import PACKAGED
from tests.helpers import REPO_ROOT, free_addr, run_bodytalk
from tests.model.serving.helpers import Processes, encoder_checkpoint, tiny_llm_checkpoint, wait_for

EVENT_KEYS = {"sensor", "body", "status", "label", "stable_label", "probs", "explanation", "latency_ms"}


def _valid_ok_event(ev) -> None:
    assert set(ev.probs) == set(DEFAULT_LABELS)
    assert sum(ev.probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert ev.label == max(ev.probs, key=ev.probs.get) and ev.stable_label in DEFAULT_LABELS
    assert all(v >= 0 for v in ev.latency_ms.values())


def test_capture_worker_server_subscriber(tmp_path, monkeypatch, tiny_model_dir):  # noqa: F811
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ck = tiny_llm_checkpoint(tmp_path / "ck", tiny_model_dir)
    cap, work, events = free_addr(), free_addr(), free_addr()
    bodies = {"1", "2", "3"}
    with Processes() as procs, Subscription(events) as client:
        procs.start("server", ["serve", "--model", ck, "--work", work, "--pub", events, "--explain-every", "1"])
        for shard in ("0/2", "1/2"):   # two workers side by side: bodies 1 and 3 go to one, 2 to the other
            procs.start(f"worker{shard[0]}", ["worker", "--model", ck, "--sub", cap, "--work", work, "--shard", shard])
        procs.start("capture", ["capture", "--source", "synthetic:?bodies=3", "--pub", cap])
        ok: dict[str, list] = collections.defaultdict(list)
        explained = []

        def collect():
            ev = client.poll(0.5)
            if ev is not None and ev.status == "ok":
                (explained if ev.explanation is not None else ok[ev.body]).append(ev)
            return set(ok) == bodies and min(map(len, ok.values())) >= 3 and explained

        wait_for(collect, 180, lambda: "events of every body and an explanation\n" + procs.log("server")
                 + procs.log("worker0") + procs.log("worker1"))
        example = subprocess.run([sys.executable, "examples/robot_behaviour.py", "--addr", events, "--duration", "4"],
                                 capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    for ev in [e for evs in ok.values() for e in evs] + explained:
        _valid_ok_event(ev)
        assert ev.sensor == "synthetic"
        assert {"features", "encoder", "queue", "label", "total"} <= set(ev.latency_ms)
        assert ev.evidence and set(ev.evidence) >= {"speed", "head_pitch"}
    assert "explain" in explained[0].latency_ms and isinstance(explained[0].explanation, str)
    # The robot example acts on the stable label of each body it hears about.
    acted = re.findall(r"^body synthetic/(\d): (\w+) -> (.+)$", example.stdout, re.M)
    assert example.returncode == 0 and acted, example.stderr
    assert all(body in bodies and label in DEFAULT_LABELS for body, label, _ in acted)


def _headless_demo(args: list, duration: float) -> list[dict]:
    result = run_bodytalk(["demo", "--headless", "--duration", duration, "--capture-pub", free_addr(),
                           "--events-pub", free_addr(), *args], timeout=duration + 120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_demo_headless_prints_one_json_line_per_event(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ck = encoder_checkpoint(tmp_path / "ck")
    lines = _headless_demo(["--model", ck, "--no-explain"], duration=5)
    assert lines and all(EVENT_KEYS <= set(line) for line in lines)
    assert {line["body"] for line in lines} == {"1", "2", "3"}   # the demo's three synthetic bodies
    for line in lines:
        assert line["type"] == "emotion" and line["explanation"] is None
        assert line["status"] == "ok" and sum(line["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert line["latency_ms"]["total"] >= 0


def test_strongly_styled_motion_is_labelled_right(monkeypatch):
    if not (PACKAGED / "config.json").is_file():
        pytest.skip(f"needs the trained demo checkpoint at {PACKAGED} (absent here)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    emotions = {"1": "sad", "2": "happy", "3": "angry"}
    source = "synthetic:?bodies=3&emotion=" + ",".join(emotions.values())
    lines = _headless_demo(["--source", source, "--no-explain"], duration=20)
    for body, emotion in emotions.items():
        stable = [line["stable_label"] for line in lines if line["body"] == body and line["status"] == "ok"]
        late = stable[len(stable) // 2:]   # after the hysteresis settled
        assert late and collections.Counter(late).most_common(1)[0][0] == emotion, (body, collections.Counter(late))


def test_demo_explains_with_the_shipped_adapter(monkeypatch):
    """The shipped demo checkpoint carries a LoRA adapter: with the base LLM pulled, the demo's events
    carry grounded explanations (without it the demo runs on the head, tested above)."""
    from bodytalk.model import checkpoint
    from bodytalk.model.llm.weights import BaseModelNotFound, resolve_base

    ck = checkpoint.load(PACKAGED)
    assert ck.cfg.llm is not None and ck.adapter is not None
    assert ck.meta["label_path"] in ("llm", "head")
    try:
        resolve_base(ck.cfg.llm.base)
    except BaseModelNotFound as err:
        pytest.skip(f"the base LLM is not pulled ({err})")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lines = _headless_demo(["--source", "synthetic:?bodies=1&emotion=sad"], duration=20)
    explained = [line for line in lines if line["explanation"] is not None]
    assert explained, [line["stable_label"] for line in lines]
    for line in explained:
        assert isinstance(line["explanation"], str) and isinstance(line["unsupported"], list)
        assert line["latency_ms"]["explain"] > 0


def test_demo_exits_non_zero_when_its_server_thread_dies(tmp_path, monkeypatch):
    from bodytalk import demo
    from bodytalk.model.serving.server import Server

    def dies(self, *a, **kw):
        raise RuntimeError("the server thread died")

    monkeypatch.setattr(Server, "run", dies)
    ck = encoder_checkpoint(tmp_path / "ck")
    code = demo.main(["--headless", "--duration", "20", "--model", str(ck), "--no-explain",
                      "--capture-pub", free_addr(), "--events-pub", free_addr()])
    assert code == 1
