"""workload.json: format, skew, unknown phones."""

from __future__ import annotations

import json
import re

import pytest

from seed import workload as wl
from seed.errors import SeedError
from seed.generate import generate
from seed.loaders import rest_row
from seed.tables import BY_NAME


@pytest.fixture(scope="module")
def rows():
    d = generate(contacts=6000, seed=2)
    return tuple(
        [rest_row(BY_NAME[n], r) for r in d.rows[n]] for n in ("workspaces", "workspace_members", "contacts")
    )


def test_format_and_skew(rows, tmp_path):
    doc = wl.build(*rows, seed=5)
    path = tmp_path / "w" / "workload.json"
    wl.write(doc, path)
    back = json.loads(path.read_text())
    assert back["format"] == "crm-workload/1"
    assert {w["name"] for w in back["workspaces"]} >= {"Eagle Overseas"}
    owners = {m["user_id"] for m in rows[1] if m["role"] == "owner"}
    assert all(w["member_user_id"] in owners for w in back["workspaces"])
    assert len(back["known"]) == 6000
    weights = sorted((k["weight"] for k in back["known"]), reverse=True)
    assert weights[0] / weights[len(weights) // 2] > 1000  # a few hot contacts
    assert 0.4 < wl.hot_share(back) < 0.8
    known = {k["phone"] for k in back["known"]}
    assert len(back["unknown"]) == 600
    assert not known & {u["phone"] for u in back["unknown"]}
    assert all(re.match(r"^628\d{9,11}$", u["phone"]) for u in back["unknown"])
    ws = {w["id"] for w in back["workspaces"]}
    assert all(k["workspace_id"] in ws for k in back["known"] + back["unknown"])
    assert wl.build(*rows, seed=5)["known"] == doc["known"]  # deterministic


def test_options(rows):
    first = rows[0][0]["id"]
    doc = wl.build(*rows, known=50, unknown=3, zipf=2.0, only=[first])
    assert len(doc["known"]) == 50 and len(doc["unknown"]) == 3
    assert {k["workspace_id"] for k in doc["known"]} == {first}
    with pytest.raises(SeedError):
        wl.build(*rows, only=["00000000-0000-4000-8000-000000000000"])
    with pytest.raises(SeedError):
        wl.build([], [], [])
