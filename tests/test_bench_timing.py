"""``gossip.bench.timing``: the one timing loop of the benchmarks."""

from gossip.bench.timing import median_seconds, median_time


def test_warmup_untimed_and_order_rotates():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    seconds = median_seconds(calls, repeats=2, warmup=1)
    assert set(seconds) == set("abc") and all(s >= 0 for s in seconds.values())
    assert order == list("abc" "bca" "cab")  # 1 + 2 rounds, each starting one later


def test_median_time_of_one_function():
    count = []
    assert median_time(lambda: count.append(1), repeats=3, warmup=2) >= 0
    assert len(count) == 5
