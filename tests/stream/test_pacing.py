import pytest

from bodytalk.stream.pacing import Pacer


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_paces_to_source_timestamps_at_speed():
    clock = FakeClock()
    p = Pacer(speed=2.0, clock=clock, sleep=clock.sleep)
    for t in (10.0, 10.5, 11.0):
        p.wait(t)
    assert clock.now == pytest.approx(100.5)  # 1 s of source time at speed 2
    assert p.overruns == 0


def test_overrun_counted_and_schedule_kept():
    clock = FakeClock()
    p = Pacer(speed=1.0, period=0.1, clock=clock, sleep=clock.sleep)
    p.wait(0.0)
    clock.now += 0.5          # a stall
    assert p.wait(0.1) == pytest.approx(0.4)
    assert p.overruns == 1
    p.wait(0.6)               # due at 100.6; now is 100.5 -> sleeps 0.1, no drift
    assert clock.now == pytest.approx(100.6)


def test_speed_zero_never_sleeps():
    clock = FakeClock()
    p = Pacer(speed=0, clock=clock, sleep=clock.sleep)
    for t in range(100):
        p.wait(float(t))
    assert clock.slept == []


def test_negative_speed_rejected():
    with pytest.raises(ValueError):
        Pacer(speed=-1)
