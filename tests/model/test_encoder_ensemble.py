"""The encoder's ensemble (several trunks) and statistics stream: what the label is made of, what
training fits, and that checkpoints without them keep their keys."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bodytalk.model.encoder import EncoderConfig, SkeletonEncoder
from bodytalk.model.skeleton import statistics
from bodytalk.model.skeleton.features import WindowInput, prepare
from bodytalk.model.statistics_head import UNSEEN_LOGIT, StatisticsHead
from bodytalk.train.losses import head_loss
from tests.model import motions

SMALL = dict(features=2, arch="tcn", strides=(1, 2, 1, 2), time_chunks=3, temporal_kernel=5, part_width=8,
             num_labels=3)


def _x(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 60, 17, 14, generator=torch.Generator().manual_seed(seed))


def test_one_trunk_without_statistics_keeps_the_old_outputs_and_keys():
    enc = SkeletonEncoder(EncoderConfig(**SMALL)).eval()
    out = enc(_x(), torch.zeros(4, dtype=torch.long))
    assert set(out) == {"st_tokens", "sem_tokens", "pooled", "logits"}
    torch.testing.assert_close(out["logits"], enc.head(out["pooled"]))
    assert not any(k.startswith(("others.", "stats_head.")) for k in enc.state_dict())


def test_the_label_is_the_average_of_the_members_probabilities():
    torch.manual_seed(0)
    enc = SkeletonEncoder(EncoderConfig(**SMALL, members=3)).eval()
    x, ids = _x(), torch.zeros(4, dtype=torch.long)
    out = enc(x, ids)
    members = torch.stack([enc.head(out["sem_tokens"].mean(1))] + [m(x, ids)["logits"] for m in enc.others])
    torch.testing.assert_close(out["member_logits"], members)
    torch.testing.assert_close(out["member_pooled"][0], out["sem_tokens"].mean(1))   # [M, B, D]: each trunk's
    torch.testing.assert_close(out["member_pooled"][1], enc.others[0](x, ids)["pooled"])
    torch.testing.assert_close(out["logits"].exp(), members.softmax(-1).mean(0))
    assert not torch.allclose(members[0], members[1])          # different initialisations
    # the tokens are the first trunk's, as one trunk alone would give them
    alone = SkeletonEncoder(EncoderConfig(**SMALL)).eval()
    alone.load_state_dict({k: v for k, v in enc.state_dict().items() if not k.startswith("others.")})
    torch.testing.assert_close(alone(x, ids)["st_tokens"], out["st_tokens"])


def test_the_statistics_stream_joins_the_label_once_fitted():
    torch.manual_seed(0)
    enc = SkeletonEncoder(EncoderConfig(**SMALL, statistics=True)).eval()
    x, ids = _x(), torch.zeros(4, dtype=torch.long)
    before = enc(x, ids)
    torch.testing.assert_close(before["logits"].exp(), before["member_logits"][0].softmax(-1))   # not yet fitted
    n = len(statistics.NAMES)
    coef = np.zeros((3, n))
    coef[2, 0] = 50.0                                             # a stream sure of label 2
    enc.stats_head.set(np.zeros(n), np.ones(n), coef, np.array([0.0, 0.0, 0.0]), np.arange(3))
    feats = statistics.summarise(x)
    after = enc(x, ids)
    stream = (feats[:, 0:1] * 50.0 * torch.tensor([0.0, 0.0, 1.0])).softmax(-1)
    torch.testing.assert_close(after["logits"].exp(), (before["member_logits"][0].softmax(-1) + stream) / 2)
    assert "stats_head.weight" in enc.state_dict() and bool(enc.state_dict()["stats_head.fitted"])


def test_a_label_the_fit_never_saw_gets_no_probability_and_two_classes_get_both_rows():
    head = StatisticsHead(4)
    n = len(statistics.NAMES)
    head.set(np.zeros(n), np.zeros(n), np.ones((1, n)), np.array([0.5]), np.array([1, 3]))
    assert head.bias[0] == UNSEEN_LOGIT and head.bias[2] == UNSEEN_LOGIT
    torch.testing.assert_close(head.weight[3] - head.weight[1], torch.ones(n))   # sklearn's binary row
    assert torch.all(head.scale == 1)                         # a constant statistic is not divided by 0
    probs = head(_x(2)).softmax(-1)
    assert probs[:, [0, 2]].max() < 1e-9 and torch.isfinite(probs).all()


def test_statistics_of_a_batch_are_those_of_each_window():
    j = motions.walk(motions.oscillate(motions.still(), [motions.U["l_wrist"]], 2.0, 0.1), 1.2)
    w = WindowInput(j.astype(np.float32), motions.confidence(j))
    one = statistics.compute(w)
    x = torch.from_numpy(np.stack([prepare(w, 60, 2)] * 2).astype(np.float64))
    np.testing.assert_allclose(statistics.summarise(x).numpy(), np.stack([one, one]), rtol=1e-4, atol=1e-5)


def test_training_fits_each_member_on_its_own():
    member_logits = torch.randn(3, 5, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0])
    fused = torch.logsumexp(member_logits.log_softmax(-1), 0) - np.log(3)
    loss = head_loss({"logits": fused, "member_logits": member_logits}, y)
    want = torch.stack([torch.nn.functional.cross_entropy(m, y) for m in member_logits]).mean()
    torch.testing.assert_close(loss, want)
    single = head_loss({"logits": member_logits[0]}, y)
    torch.testing.assert_close(single, torch.nn.functional.cross_entropy(member_logits[0], y))


@pytest.mark.parametrize("bad", [dict(members=0), dict(statistics=True, features=1)])
def test_bad_ensemble_settings_are_refused(bad):
    with pytest.raises(ValueError, match="members|statistics"):
        EncoderConfig(**{**SMALL, **bad})
