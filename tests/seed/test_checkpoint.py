"""Checkpoint file: atomic replace, ownership, damaged files."""

from __future__ import annotations

import json

import pytest

from seed import checkpoint as ckpt
from seed.errors import SeedError


def test_round_trip_and_stale_temp_files_removed(tmp_path):
    path = tmp_path / "cp.json"
    cp = ckpt.Checkpoint(path=path, source="http://a", target="http://b")
    cp.tables["contacts"].cursor = "abc"
    cp.tables["contacts"].rows = 10
    cp.tables["workspaces"].done = True
    cp.save()
    (tmp_path / ".cp.json.999.tmp").write_text("{torn")
    back = ckpt.load(path, "http://a", "http://b")
    assert back is not None and back.tables["contacts"].cursor == "abc" and back.tables["workspaces"].done
    assert back.started and not back.complete
    assert not (tmp_path / ".cp.json.999.tmp").exists()


def test_crash_between_write_and_rename_keeps_previous_version(tmp_path):
    path = tmp_path / "cp.json"
    cp = ckpt.Checkpoint(path=path, source="s", target="t")
    cp.tables["messages"].rows = 5
    cp.save()

    def boom() -> None:
        raise KeyboardInterrupt

    cp.before_replace = boom
    cp.tables["messages"].rows = 6
    with pytest.raises(KeyboardInterrupt):
        cp.save()
    assert json.loads(path.read_text())["tables"]["messages"]["rows"] == 5


def test_other_targets_and_damage_are_refused(tmp_path):
    path = tmp_path / "cp.json"
    ckpt.Checkpoint(path=path, source="s", target="t").save()
    with pytest.raises(SeedError, match="belongs to s -> t"):
        ckpt.load(path, "s", "other")
    path.write_text("{not json")
    with pytest.raises(SeedError, match="unreadable"):
        ckpt.load(path, "s", "t")
    assert ckpt.load(tmp_path / "none.json", "s", "t") is None
