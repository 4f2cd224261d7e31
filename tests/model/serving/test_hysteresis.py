import pytest

from bodytalk.model.serving.hysteresis import StableLabel

LABELS = ("neutral", "sad", "happy")


def _p(label, p=0.8):
    rest = (1 - p) / 2
    return {k: (p if k == label else rest) for k in LABELS}


def test_first_window_sets_the_label():
    s = StableLabel(LABELS)
    assert s.update(_p("sad")) and s.label == "sad"


def test_single_outlier_window_does_not_flicker():
    s = StableLabel(LABELS)
    s.update(_p("sad"))
    changes = [s.update(p) for p in (_p("happy"), _p("sad"), _p("happy"), _p("sad"))]
    assert not any(changes) and s.label == "sad"


def test_sustained_change_switches_after_hold_windows():
    s = StableLabel(LABELS, hold=2)
    s.update(_p("sad"))
    changes = [s.update(_p("happy", 0.9)) for _ in range(4)]
    assert s.label == "happy"
    assert changes.count(True) == 1 and changes.index(True) >= 1


def test_close_call_within_margin_keeps_label():
    s = StableLabel(LABELS, margin=0.2)
    s.update(_p("sad", 0.5))
    for _ in range(5):
        s.update({"neutral": 0.1, "sad": 0.42, "happy": 0.48})
    assert s.label == "sad"


@pytest.mark.parametrize("kw", [dict(alpha=0), dict(margin=-1), dict(hold=0)])
def test_validation(kw):
    with pytest.raises(ValueError):
        StableLabel(LABELS, **kw)
