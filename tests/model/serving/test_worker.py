"""The tokenizer worker: windows -> PromptWork, sharding, and a push that drops instead of blocking."""
from collections import Counter

import numpy as np
import pytest
import torch

from bodytalk.model.skeleton.features import WindowInput
from bodytalk.model.inference import EmotionModel
from bodytalk.model.serving.tokenize import Tokenizer, descriptors_of, model_fingerprint
from bodytalk.model.serving.worker import Worker, WorkerConfig, parse_shard, shard_of
from bodytalk.stream import schema, topics
from bodytalk.stream.transport import Puller, Pusher
from tests.helpers import free_addr
from tests.model.serving.helpers import ListIntake, synthetic_windows, unreadable, wait_for

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def windows():
    return synthetic_windows(bodies=3, seconds=3.0)


@pytest.fixture()
def model(tiny_emotion_model):
    return tiny_emotion_model(seed=2)


def _wire(msg):
    return schema.decode(schema.encode(msg))[0]


@pytest.mark.parametrize("path", ["llm", "head"])
def test_work_over_the_wire_gives_the_in_process_probabilities(model, windows, path):
    batch = windows[:4]
    work = [_wire(w) for w in Tokenizer(model).tokenize([(w, 0.0) for w in batch])]
    assert [w.status for w in work] == ["ok"] * 4
    assert work[0].tokens.shape == (model.cfg.encoder.semantic_tokens + model.cfg.encoder.num_st_tokens,
                                    model.llm.hidden_size)
    probs = model.label_probs(torch.from_numpy(np.stack([w.tokens for w in work])), [w.evidence_text for w in work],
                              torch.from_numpy(np.stack([w.head_logits for w in work])), path)
    direct = model.recognise([WindowInput(w.joints, w.confidence, w.fps, w.layout) for w in batch], path=path)
    for row, reading in zip(probs.tolist(), direct):
        assert row == pytest.approx([reading.probs[k] for k in model.labels], abs=1e-5)


def test_evidence_survives_the_wire(model, windows):
    (work,) = [_wire(w) for w in Tokenizer(model).tokenize([(windows[0], 12.5)])]
    before = model.prepare([WindowInput(windows[0].joints, windows[0].confidence, windows[0].fps)]).evidence[0]
    after = descriptors_of(work)
    assert list(after) == list(before)
    for name in before:
        assert after[name].valid == before[name].valid
        if before[name].valid:
            assert after[name].value == pytest.approx(before[name].value)
    assert work.t_received == 12.5 and set(work.latency_ms) == {"features", "encoder"}


def test_an_unreadable_window_becomes_insufficient_data_with_a_reason(model, windows):
    items = Tokenizer(model).tokenize([(windows[0], 0.0), (unreadable(windows[1]), 0.0)])
    good, bad = map(_wire, items)
    assert good.status == "ok"
    assert bad.status == "insufficient_data" and "frames" in bad.reason
    assert bad.tokens.size == 0 and (bad.sensor, bad.body, bad.window_seq) == (windows[1].sensor, windows[1].body,
                                                                               windows[1].seq)


def test_fingerprint_tells_checkpoints_apart(model, tmp_path):
    other = EmotionModel.untrained(model.cfg, llm=model.llm, seed=3)
    assert model_fingerprint(model) != model_fingerprint(other)
    model.save(tmp_path / "ck")
    assert model_fingerprint(EmotionModel.load(tmp_path / "ck", with_llm=False)) == model_fingerprint(model)


def test_shards_partition_the_bodies():
    bodies = [("kinect0", str(b)) for b in range(40)] + [("mocap", str(b)) for b in range(40)]
    owners = [shard_of(s, b, 3) for s, b in bodies]
    assert min(Counter(owners).values()) >= 15   # about 27 each: sequential ids spread out
    assert owners == [shard_of(s, b, 3) for s, b in bodies]   # stable: no per-process salt
    assert parse_shard("1/3") == (1, 3)
    with pytest.raises(ValueError, match="shard"):
        WorkerConfig(shard=(3, 3))


def test_a_worker_forwards_only_its_shard(model, windows):
    mine = shard_of(windows[0].sensor, windows[0].body, 2)
    sent = []
    push = type("Push", (), {"send": lambda self, msg, ts=None: sent.append(msg) or True})()
    worker = Worker(WorkerConfig(shard=(mine, 2)), Tokenizer(model), ListIntake(windows), push)
    while worker.step(0):
        pass
    expected = [w for w in windows if shard_of(w.sensor, w.body, 2) == mine]
    assert [(w.body, w.window_seq) for w in sent] == [(w.body, w.seq) for w in expected]
    assert worker.counts["other_shard"] == len(windows) - len(expected)


def test_no_server_means_counted_drops_and_no_stale_backlog(model, windows):
    addr = free_addr()
    push = Pusher(addr, hwm=4, block=False, immediate=True)
    worker = Worker(WorkerConfig(name="t"), Tokenizer(model), ListIntake(windows[:6]), push)
    try:
        while worker.step(0):
            pass
        assert worker.counts["windows"] == 6 and worker.counts["push_drops"] == 6
        with Puller(addr) as pull:
            worker.sub.msgs.extend(windows[6:8])
            # The push reaches a server once the connection is up; until then it keeps dropping.
            wait_for(lambda: worker.step(0) or worker.sub.msgs.extend(windows[6:8]), 10, "the restarted server")
            got = pull.recv(5)[0]
            assert isinstance(got, schema.PromptWork) and got.topic.startswith(topics.WORK)
            assert (got.body, got.window_seq) in {(w.body, w.seq) for w in windows[6:8]}  # nothing stale
            worker.beat()
            status = wait_for(lambda: _first_status(pull), 5, "the worker's heartbeat")
            assert status.component == "worker_t" and status.drops >= 6
            assert status.counters["push_drops"] == status.drops
    finally:
        push.close()


def _first_status(pull):
    while (got := pull.recv(0.2)) is not None:
        if isinstance(got[0], schema.Status):
            return got[0]
    return None


def test_prompt_work_refuses_inconsistent_items():
    base = dict(sensor="s", body="1", window_seq=0, t_start=0.0, t_end=1.0, model="m")
    tokens, logits = np.zeros((2, 4), np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="needs skeleton tokens"):
        schema.PromptWork(status="ok", tokens=np.zeros((0, 0), np.float32), head_logits=logits, **base)
    with pytest.raises(ValueError, match="needs a reason"):
        schema.PromptWork(status="insufficient_data", tokens=tokens, head_logits=logits, **base)
    with pytest.raises(ValueError, match="evidence"):
        schema.PromptWork(status="ok", tokens=tokens, head_logits=logits, evidence={"speed": "fast"}, **base)
    with pytest.raises(ValueError, match="NaN"):
        schema.PromptWork(status="ok", tokens=np.full((2, 4), np.nan, np.float32), head_logits=logits, **base)
