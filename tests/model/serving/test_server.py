"""The emotion server's two ways in (windows, or workers' PromptWork) share one reading path."""
import dataclasses
import json
import threading

import numpy as np
import pytest
import torch

from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.model.serving.tokenize import Tokenizer, descriptors_of
from bodytalk.stream import schema
from bodytalk.stream.tail import human_line, json_line
from tests.helpers import Collect
from tests.model.serving.helpers import ListIntake, synthetic_windows, unreadable, wait_for

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def windows():
    return synthetic_windows(bodies=2, seconds=4.0)


@pytest.fixture()
def model(tiny_emotion_model):
    return tiny_emotion_model(seed=4)


def _serve(model, msgs, **cfg):
    pub = Collect()
    server = Server(ServeConfig(explain=False, **cfg), model, pub, ListIntake(msgs))
    while server.step(0):
        pass
    return server, pub


def _wire(msg):
    return schema.decode(schema.encode(msg))


def test_windows_in_events_out(model, windows):
    server, pub = _serve(model, [windows[0], unreadable(windows[1]), *windows[2:6]])
    events = pub.of(schema.EmotionEvent)
    assert len(events) == 6 and server.events == 6
    assert events[1].status == "insufficient_data" and events[1].label is None and events[1].probs == {}
    assert "confident" in events[1].reason   # why: every joint of that window has confidence 0
    for ev in events[:1] + events[2:]:
        assert ev.status == "ok" and set(ev.probs) == set(model.labels) and ev.reason is None
        assert sum(ev.probs.values()) == pytest.approx(1, abs=1e-4)
        assert ev.stable_label in model.labels and "speed" in ev.evidence
        assert {"features", "encoder", "label", "total"} <= set(ev.latency_ms)


@pytest.mark.parametrize("path", ["llm", "head"])
def test_split_mode_publishes_what_the_one_process_mode_does(model, windows, path):
    _, direct = _serve(model, windows[:6], path=path)
    work = [_wire(w) for w in Tokenizer(model).tokenize([(w, 0.0) for w in windows[:6]])]
    server, split = _serve(model, [m for m, _ in work], path=path)
    for a, b in zip(direct.of(schema.EmotionEvent), split.of(schema.EmotionEvent), strict=True):
        assert (a.body, a.window_seq, a.label, a.stable_label, a.evidence) == (b.body, b.window_seq, b.label,
                                                                               b.stable_label, b.evidence)
        assert [a.probs[k] for k in model.labels] == pytest.approx([b.probs[k] for k in model.labels], abs=1e-6)
        assert "queue" in b.latency_ms and "queue" not in a.latency_ms


def test_the_reason_crosses_the_split_and_shows_in_json(model, windows):
    work = [m for m, _ in map(_wire, Tokenizer(model).tokenize([(unreadable(windows[0]), 0.0)]))]
    _, pub = _serve(model, work)
    (event,) = pub.of(schema.EmotionEvent)
    assert event.status == "insufficient_data" and event.reason == work[0].reason and event.reason
    line = json.loads(json_line(event.topic, _wire(event)[0], 0.0))   # what `tail --json` and the demo print
    assert line["reason"] == event.reason and line["label"] is None


def _explained(model, msgs, **cfg):
    """Run a server on ``msgs`` until an explained event is published: (that event, everything sent)."""
    pub, stop = Collect(), threading.Event()
    server = Server(ServeConfig(explain=True, **cfg), model, pub, ListIntake(msgs))
    thread = threading.Thread(target=server.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        explained = wait_for(lambda: [e for e in pub.of(schema.EmotionEvent) if e.explanation is not None], 60,
                             "an explained event")
    finally:
        stop.set()
        thread.join(30)
    return explained[0], pub


@pytest.mark.parametrize("stream_text", [True, False])
def test_explanation_pieces_stream_then_the_checked_text_follows(model, windows, stream_text):
    work = [m for m, _ in map(_wire, Tokenizer(model).tokenize([(w, 0.0) for w in windows[:1]]))]
    event, pub = _explained(model, work, max_new_tokens=12, stream_text=stream_text)
    # What the model generates for this window, raw and grounding-checked, without streaming.
    args = (torch.from_numpy(np.array(work[0].tokens))[None], [descriptors_of(work[0])], [event.stable_label])
    mgs = [MGResult.from_jsonable(work[0].mgs)]
    (raw, _), = model.explain_tokens(*args, max_new_tokens=12, drop_unsupported=False, mgs=mgs)
    (checked, _), = model.explain_tokens(*args, max_new_tokens=12, mgs=mgs)
    assert raw and event.explanation == checked
    pieces = pub.of(schema.EmotionText)
    if not stream_text:
        assert pieces == []
        return
    assert [p.index for p in pieces] == list(range(len(pieces))) and len(pieces) >= 2
    assert all((p.sensor, p.body, p.window_seq) == (event.sensor, event.body, event.window_seq) for p in pieces)
    assert [p.done for p in pieces] == [False] * (len(pieces) - 1) + [True] and pieces[-1].text == ""
    assert "".join(p.text for p in pieces).strip() == raw
    assert pub.msgs.index(pieces[-1]) < pub.msgs.index(event)   # pieces first, then the checked text


def test_work_from_another_checkpoint_or_of_the_wrong_shape_is_refused_and_counted(model, windows):
    good, other, odd = (m for m, _ in map(_wire, Tokenizer(model).tokenize([(w, 0.0) for w in windows[:3]])))
    other = dataclasses.replace(other, model="0123456789abcdef")
    odd = dataclasses.replace(odd, tokens=np.zeros((3, 5), np.float32))
    server, pub = _serve(model, [good, other, odd])
    assert [(e.body, e.window_seq) for e in pub.of(schema.EmotionEvent)] == [(good.body, good.window_seq)]
    server.beat(rate_hz=1.0)
    (status,) = pub.of(schema.Status)
    assert status.component == "server" and status.drops == 2
    assert status.counters["refused_model"] == 1 and status.counters["refused_shape"] == 1


def test_worker_heartbeats_are_forwarded_and_lost_windows_counted(model, windows):
    body0 = [w for w in windows if w.body == windows[0].body]
    beat = schema.Status(component="worker_a", state="running", drops=3)
    server, pub = _serve(model, [body0[0], beat, body0[3]])   # seq 1 and 2 never arrived
    assert pub.of(schema.Status)[0].component == "worker_a"
    assert server.counts["lost_windows"] == 2


def test_explanations_come_from_the_workers_tokens(model, windows):
    work = [m for m, _ in map(_wire, Tokenizer(model).tokenize([(w, 0.0) for w in windows[:2]]))]
    explained, _ = _explained(model, work, max_new_tokens=4)
    assert explained.label in model.labels and "explain" in explained.latency_ms


def test_serve_passes_no_int8_to_the_model_loader(monkeypatch):
    """`serve --no-int8` loads the LLM with its exact weights (the default: int8 copies)."""
    from bodytalk.model import registry
    from bodytalk.model.serving import server

    calls = []

    def fake_load(*args, **kwargs):
        calls.append(kwargs)
        raise FileNotFoundError("stop here")                        # main reports it and exits 2

    monkeypatch.setattr(registry, "load_model", fake_load)
    assert server.main(["--no-int8", "--duration", "0.1"]) == 2
    assert server.main(["--duration", "0.1"]) == 2
    assert [c["int8"] for c in calls] == [False, True]


def test_serve_loads_the_llm_whenever_it_explains(monkeypatch):
    """`serve --path head` labels with the fast head but still explains (the demo's configuration);
    only with --no-explain as well does it skip loading the LLM."""
    from bodytalk.model import registry
    from bodytalk.model.serving import server

    calls = []

    def fake_load(*args, **kwargs):
        calls.append(kwargs["with_llm"])
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(registry, "load_model", fake_load)
    for argv in (["--path", "head"], ["--path", "head", "--no-explain"], ["--path", "llm", "--no-explain"]):
        assert server.main([*argv, "--duration", "0.1"]) == 2
    assert calls == [True, False, True]


class _FakeExplainingModel:
    """Stands in for EmotionModel in Explainer: two pieces per explanation, counting the steps."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.passes = fail, 0

    def explain_tokens_stream(self, tokens, evidence, label, mgs, max_new_tokens):
        for piece in (f"{label}:", " arms wide"):
            self.passes += 1
            if self.fail:
                raise RuntimeError("the LLM broke")
            yield piece

    @staticmethod
    def ground(text, evidence, mgs):
        return text + " (checked)", []


@pytest.mark.parametrize("fail", [False, True], ids=["explains", "fails"])
def test_the_explainer_steps_one_piece_at_a_time_and_refuses_stale_jobs(model, windows, fail):
    from bodytalk.model.serving.explainer import Explainer

    (work,) = Tokenizer(model).tokenize([(windows[1], 0.0)])
    fake, sent, finished = _FakeExplainingModel(fail), [], []
    explainer = Explainer(fake, sent.append, lambda event, t_received: finished.append(event))
    assert not explainer.busy
    assert explainer.submit({"latency_ms": {}}, work, "sad")          # in progress at the first step
    assert explainer.submit({"latency_ms": {}}, work, "happy")        # waits behind it: one at most
    assert not explainer.submit({"latency_ms": {}}, work, "angry")    # refused: it would start stale
    assert explainer.busy and explainer.queued == 1
    explainer.step()
    assert fake.passes == 1 and len(sent) == 1                         # one model step, not the whole text
    explainer.drain()
    assert not explainer.busy
    assert [p.done for p in sent].count(True) == 2                      # "done" even after a failure
    assert all(p.window_seq == work.window_seq for p in sent)
    if fail:
        assert finished == [] and [p.text for p in sent] == ["", ""]
    else:
        assert [e["explanation"] for e in finished] == ["sad: arms wide (checked)", "happy: arms wide (checked)"]
        assert [p.text for p in sent] == ["sad:", " arms wide", "", "happy:", " arms wide", ""]
        assert [p.index for p in sent] == [0, 1, 2, 0, 1, 2] and all("explain" in e["latency_ms"] for e in finished)


def test_labels_are_read_between_the_steps_of_an_explanation(model, windows):
    """A window that arrives while an explanation is generated is labelled before the explanation
    ends: the server polls for windows between its decoding steps."""
    pub, intake = Collect(), ListIntake()
    server = Server(ServeConfig(explain=True, max_new_tokens=12), model, pub, intake)
    waiting = list(windows)
    while not server.explainer.busy:               # until a body's stable label asks for an explanation
        intake.msgs.append(waiting.pop(0))
        server.step(0)
    explained = pub.of(schema.EmotionEvent)[-1]     # the label event of the window being explained
    server.explainer.step()                         # its prompt pass and first piece
    later = waiting.pop(0)
    intake.msgs.append(later)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(e.explanation is not None for e in pub.of(schema.EmotionEvent)), 60, "the explanation")
    finally:
        stop.set()
        thread.join(60)
    order = [((e.body, e.window_seq), e.explanation is not None) for e in pub.of(schema.EmotionEvent)]
    assert order.index(((later.body, later.seq), False)) < order.index(((explained.body, explained.window_seq), True))


def _padded(w: schema.SkeletonWindow, real: int, seq: int) -> schema.SkeletonWindow:
    """``w`` as a padded window of its first ``real`` frames, reflected (what the windower sends)."""
    from bodytalk.capture.windowing import reflect_index

    idx = reflect_index(real, len(w.joints))
    return dataclasses.replace(w, seq=seq, joints=w.joints[idx], confidence=w.confidence[idx],
                               interpolated=w.interpolated[idx], padded=True, real_frames=real)


def test_padded_windows_are_read_and_their_events_say_so(model, windows):
    """A padded window is read like any other (the flag crosses the worker split into the event);
    under the minimum real length it is insufficient data with the reason."""
    msgs = [windows[0], _padded(windows[1], 20, 1), _padded(windows[2], 3, 2)]
    _, pub = _serve(model, [_wire(m)[0] for m in msgs])
    full, padded, glimpse = pub.of(schema.EmotionEvent)
    assert (full.padded, full.real_frames) == (False, None)
    assert (padded.status, padded.padded, padded.real_frames) == ("ok", True, 20)
    assert (glimpse.status, glimpse.padded, glimpse.real_frames) == ("insufficient_data", True, 3)
    assert "needs at least 0.5 s" in glimpse.reason
    work = [_wire(w)[0] for w in Tokenizer(model).tokenize([(m, 0.0) for m in msgs])]
    assert [(w.padded, w.real_frames) for w in work] == [(False, None), (True, 20), (True, 3)]
    assert json.loads(json_line(padded.topic, padded, 0.0))["real_frames"] == 20
    assert "padded=True real_frames=20" in human_line(padded.topic, padded, 0.0)
    assert "padded" not in human_line(full.topic, full, 0.0)
