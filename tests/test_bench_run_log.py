"""A suite's runs.jsonl: runs appended as they end, read back by key, cut-off lines skipped."""

import json

from gossip.bench.run_log import appending, read_runs


def _key(run):
    return json.dumps([run["name"], run["seed"]])


def test_runs_are_read_back_by_key_first_of_duplicates(tmp_path):
    path = tmp_path / "runs.jsonl"
    assert read_runs(path, _key) == {}
    with appending(path) as write:
        write({"name": "a", "seed": 0, "acc": 0.5})
        write({"name": "a", "seed": 1, "acc": 0.6})
    with appending(path) as write:  # a second session appends
        write({"name": "a", "seed": 0, "acc": 0.9})
    done = read_runs(path, _key)
    assert sorted(done) == [_key({"name": "a", "seed": s}) for s in (0, 1)]
    assert done[_key({"name": "a", "seed": 0})]["acc"] == 0.5


def test_a_line_cut_off_is_skipped_and_the_next_run_starts_its_own_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"name": "a", "seed": 0}) + "\n" + '{"name": "b", "se')
    said = []
    assert list(read_runs(path, _key, said.append)) == [_key({"name": "a", "seed": 0})]
    assert said == [f"{path}:2: not a finished run, skipped"]
    with appending(path) as write:
        write({"name": "b", "seed": 0})
    assert len(read_runs(path, _key)) == 2
    assert path.read_text().splitlines()[1] == '{"name": "b", "se'


def test_a_line_that_is_not_a_run_object_is_skipped(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('[1, 2]\n{"name": "a", "seed": 3}\n\n')
    said = []
    assert list(read_runs(path, _key, said.append)) == [_key({"name": "a", "seed": 3})]
    assert said == [f"{path}:1: not a finished run, skipped"]
