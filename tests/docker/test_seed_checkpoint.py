"""The compose seed one-shot and a checkpoint left in .seed/ by a run from the
host: the repository is mounted at /app, so the one-shot sees the host's
`.seed/migrate-checkpoint.json`. Its migrate arguments, taken from
docker-compose.yml, go through the seed's own parser and checkpoint code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.settings import url_host
from seed import checkpoint as ckpt
from seed import migrate as mig
from seed.cli import parser
from seed.errors import SeedError

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _migrate_args(compose: dict[str, Any]) -> list[str]:
    command = compose["services"]["seed"]["command"]
    script = command[-1] if isinstance(command, list) else command
    match = re.search(r"python -m seed migrate([^&;|]*)", script)
    assert match, "the seed one-shot does not run `python -m seed migrate`"
    return shlex.split(match.group(1))


def _hosts(compose: dict[str, Any]) -> tuple[str, str]:
    """The (source, target) a migrate run inside the compose network records."""
    env = compose["services"]["seed"]["environment"]
    return url_host(env["SUPABASE_URL"]), url_host(env["CONVEX_URL"])


def _options(argv: list[str]) -> mig.Options:
    args = parser().parse_args(["migrate", *argv])
    return mig.Options(checkpoint=Path(args.checkpoint), restart=args.restart or args.clear)


@pytest.fixture()
def host_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An interrupted sandbox migration's checkpoint, where the host run left it."""
    monkeypatch.chdir(tmp_path)
    left = ckpt.Checkpoint(path=ckpt.DEFAULT_PATH, source="http://127.0.0.1:54321", target="http://127.0.0.1:3210")
    left.tables["workspaces"] = ckpt.TableState(cursor="00000000-0000-4000-8000-000000000009", rows=9, done=True)
    left.save()
    return tmp_path / ckpt.DEFAULT_PATH


def test_default_checkpoint_would_stop_the_one_shot(host_checkpoint: Path) -> None:
    """The failure the one-shot had: the host's checkpoint names other hosts."""
    source, target = _hosts(_compose())
    with pytest.raises(SeedError, match="belongs to"):
        mig.open_checkpoint(_options([]), source, target)


def test_one_shot_starts_despite_a_host_checkpoint(host_checkpoint: Path) -> None:
    compose = _compose()
    source, target = _hosts(compose)
    assert source == "http://gateway:8000" and target == "http://convex-backend:3210"
    before = host_checkpoint.read_bytes()
    opts = _options(_migrate_args(compose))
    cp, resuming = mig.open_checkpoint(opts, source, target)
    assert not resuming and cp.source == source and cp.target == target
    cp.save()
    assert host_checkpoint.read_bytes() == before, "the host's checkpoint was touched"
    assert opts.checkpoint.resolve() != host_checkpoint.resolve()


def test_one_shot_resumes_its_own_interrupted_run(host_checkpoint: Path) -> None:
    compose = _compose()
    source, target = _hosts(compose)
    opts = _options(_migrate_args(compose))
    if opts.restart:
        pytest.skip("the one-shot copies everything on each start (--restart)")
    first, _ = mig.open_checkpoint(opts, source, target)
    first.tables["workspaces"] = ckpt.TableState(cursor="00000000-0000-4000-8000-000000000003", rows=3, done=True)
    first.tables["contacts"] = ckpt.TableState(cursor="00000000-0000-4000-8000-000000000120", rows=120)
    first.save()
    again, resuming = mig.open_checkpoint(opts, source, target)
    assert resuming and again.tables["contacts"].rows == 120
