"""``supervise``: restarts of failed children (``--restarts``), with back-off, and the summary."""

import subprocess
import time
from pathlib import Path

import pytest

from gossip.launch import supervise as sup
from gossip.launch.supervise import Child, restart_delay, restart_line, supervise


def test_the_back_off_doubles_up_to_a_limit():
    assert [restart_delay(k) for k in range(7)] == [1, 2, 4, 8, 16, 30, 30]


class Script:
    """Children that run ``sh -c`` with the exit codes given per peer, one per start."""

    def __init__(self, tmp_path: Path, codes: dict[int, list[int]]):
        self.tmp_path, self.codes = tmp_path, codes
        self.starts: list[tuple[int, float]] = []

    def popen(self, peer: int) -> subprocess.Popen:
        run = sum(1 for p, _ in self.starts if p == peer)
        self.starts.append((peer, time.monotonic()))
        code = self.codes[peer][min(run, len(self.codes[peer]) - 1)]
        return subprocess.Popen(["sh", "-c", f"echo run {run} of peer {peer} >&2; exit {code}"],
                                stderr=(self.tmp_path / f"{peer}.log").open("a"))

    def start(self, children: list[Child]) -> None:
        for peer in self.codes:
            children.append(Child(peer, self.popen(peer), self.tmp_path / f"{peer}.log"))

    def restart(self, child: Child) -> None:
        child.proc = self.popen(child.peer)


def follow(children: list[Child]) -> int:
    time.sleep(0.01)
    return 0


@pytest.fixture
def fast_back_off(monkeypatch):
    monkeypatch.setattr(sup, "RESTART_DELAY_S", 0.05)


def test_a_failed_peer_is_restarted_until_it_succeeds(tmp_path, fast_back_off, capsys):
    script = Script(tmp_path, {0: [0], 1: [3, 137, 0]})
    status, children = supervise(2, 1, False, script.start, follow, restart=script.restart,
                                 max_restarts=3)
    assert status == 0
    assert [c.proc.returncode for c in children] == [0, 0]
    assert [(c.restarts, c.failures) for c in children] == [(0, []), (2, [3, 137])]
    starts = [t for p, t in script.starts if p == 1]
    assert starts[1] - starts[0] >= 0.05 and starts[2] - starts[1] >= 0.1  # 1x, then 2x
    err = capsys.readouterr().err
    assert "peer 1 failed (exit code 3): run 0 of peer 1" in err
    assert "restarting it with --resume in 0.05 s (restart 1 of 3)" in err
    assert "restarting it with --resume in 0.1 s (restart 2 of 3)" in err
    assert restart_line(children) == "gossip launch: restarts: peer 1 2 (exit codes 3, 137)"


def test_restarts_stop_at_the_limit(tmp_path, fast_back_off):
    script = Script(tmp_path, {0: [0], 1: [5]})
    status, children = supervise(2, 1, False, script.start, follow, restart=script.restart,
                                 max_restarts=2)
    assert status == 0 and children[1].proc.returncode == 5
    assert children[1].restarts == 2 and len(script.starts) == 4
    assert "run 2 of peer 1" in children[1].last_log_line()


def test_without_restarts_a_failure_stays(tmp_path):
    script = Script(tmp_path, {0: [4], 1: [0]})
    _, children = supervise(2, 1, False, script.start, follow, restart=script.restart)
    assert [c.restarts for c in children] == [0, 0] and children[0].proc.returncode == 4
    assert restart_line(children) is None


def test_the_bar_ends_full_when_every_peer_finished_short_of_its_rounds(tmp_path, capsys):
    # Async peers stop when their in-neighbours have: 2 peers of 10 rounds did 7 in all.
    reports = iter([7])
    script = Script(tmp_path, {0: [0], 1: [0]})
    status, _ = supervise(2, 10, True, script.start, lambda children: next(reports, 0))
    bar = capsys.readouterr().err.splitlines()[-1].split("\r")[-1]
    assert status == 0 and "100%" in bar and "7/7" in bar, bar
    script = Script(tmp_path, {0: [0], 1: [1]})  # a failed peer: the bar says what was done
    reports = iter([7])
    supervise(2, 10, True, script.start, lambda children: next(reports, 0))
    bar = capsys.readouterr().err.splitlines()[-1].split("\r")[-1]
    assert "7/20" in bar, bar
