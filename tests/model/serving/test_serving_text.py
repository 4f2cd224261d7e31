"""Explanation text streamed over the bus: the server's pieces on emotion.text.<sensor>.<body>, as
`bodytalk tail` prints them."""
import io
import json
import threading

import numpy as np
import pytest
import torch

from bodytalk.model.checkpoint import ModelConfig
from bodytalk.model.inference import EmotionModel
from bodytalk.model.skeleton.microgestures import MGResult
from bodytalk.model.serving.server import ServeConfig, Server
from bodytalk.model.serving.tokenize import Tokenizer, descriptors_of
from bodytalk.stream import schema, tail, topics
from bodytalk.stream.transport import Publisher, Subscriber
from tests.helpers import free_addr
from tests.model.serving.helpers import ListIntake, synthetic_windows, wait_for

torch.set_num_threads(1)


@pytest.fixture()
def model(tiny_model_dir, tiny_llm):  # noqa: F811
    cfg = ModelConfig.create(hidden=tiny_llm.hidden_size, llm={"base": str(tiny_model_dir), "dtype": "float32"})
    return EmotionModel.untrained(cfg, llm=tiny_llm, seed=4)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_tail_prints_the_pieces_of_an_explanation_as_they_come(model, as_json):
    (work,) = Tokenizer(model).tokenize([(synthetic_windows(bodies=2, seconds=4.0)[1], 0.0)])
    # The greedy pieces of this window's explanation, generated here first: the server must send the same.
    label = model.labels[int(np.argmax(work.head_logits))]
    expected = [p for p in model.explain_tokens_stream(torch.from_numpy(np.array(work.tokens))[None], descriptors_of(work),
                                                       label, MGResult.from_jsonable(work.mgs), 12) if p]
    assert len(expected) >= 2
    addr, stop, out = free_addr(), threading.Event(), io.StringIO()
    with Publisher(addr) as pub, Subscriber(addr, prefixes=[topics.EMOTION_TEXT, "status.probe"]) as sub:
        wait_for(lambda: pub.send(schema.Status(component="probe", state="running")) and sub.recv(0.05), 10,
                 "the subscriber to connect")
        while sub.recv(0.1) is not None:   # the probes sent while connecting
            pass
        server = Server(ServeConfig(path="head", max_new_tokens=12), model, pub, ListIntake([work]))
        thread = threading.Thread(target=server.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        try:
            tail.run(sub, count=len(expected) + 1, as_json=as_json, out=out)   # the pieces and "done"
        finally:
            stop.set()
            thread.join(30)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(expected) + 1
    if as_json:
        got = [json.loads(line) for line in lines]
        assert [g["index"] for g in got] == list(range(len(got))) and got[-1]["done"] and not got[-2]["done"]
        assert [g["text"] for g in got] == expected + [""]
        assert all(g["topic"] == topics.emotion_text(work.sensor, work.body) for g in got)
    else:
        # Text with spaces is quoted, so a piece's trailing space (a word's end) shows, and "done" is empty.
        spaced = [(line, p) for line, p in zip(lines, expected) if " " in p]
        assert spaced and all(f"text={json.dumps(p, ensure_ascii=False)} " in line for line, p in spaced)
        assert 'text="" done=True' in lines[-1] and all("done=False" in line for line in lines[:-1])
