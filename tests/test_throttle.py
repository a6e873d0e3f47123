"""Token buckets per sender (fake clock): bursts pass, floods are cut, time and rounds refill."""

from gossip.peer.throttle import Throttle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_burst_passes_then_the_bucket_refills_with_time_and_rounds():
    clock = Clock()
    t = Throttle(rate=2.0, burst=5, per_round=3, clock=clock)
    assert [t.allow(1) for _ in range(7)] == [True] * 5 + [False] * 2
    assert t.allow(2)  # another sender has its own bucket
    clock.now += 1.0  # 2 tokens
    assert [t.allow(1) for _ in range(3)] == [True, True, False]
    t.new_round()  # 3 tokens
    assert [t.allow(1) for _ in range(4)] == [True] * 3 + [False]
    clock.now += 100.0  # never more than the burst
    assert sum(t.allow(1) for _ in range(10)) == 5


def test_refused_messages_take_no_token():
    clock = Clock()
    t = Throttle(rate=1.0, burst=1, clock=clock)
    assert t.allow(0) and not t.allow(0) and not t.allow(0)
    clock.now += 1.0
    assert t.allow(0)
