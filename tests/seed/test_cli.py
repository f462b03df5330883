"""Bad input: one line naming the cause, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import socket

import pytest

from seed import cli
from seed.generate import generate

from . import fake_convex, fake_supabase

NAMES = (
    "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "DATABASE_URL", "CONVEX_URL", "CONVEX_ADMIN_KEY", "ENV_FILE",
    "CONVEX_SITE_URL", "APP_URL", "SEED_TEST_KILL", "NEXT_PUBLIC_SUPABASE_URL", "NEXT_PUBLIC_CONVEX_URL", "CONVEX_DEPLOYMENT",
)  # fmt: skip


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env / .env.local from the repository
    for n in NAMES:
        monkeypatch.delenv(n, raising=False)

    def set_(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)

    return set_


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["-q", *argv])
    captured = capsys.readouterr()
    return code, captured.err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_settings(env, capsys):
    code, err = run(capsys, "migrate")
    assert code == 2
    assert "SUPABASE_URL is not set" in one_line(err)


def test_malformed_url(env, capsys):
    env(SUPABASE_URL="not a url", SUPABASE_SERVICE_ROLE_KEY="k")
    code, err = run(capsys, "workload")
    assert code == 2 and "SUPABASE_URL must be an http(s) URL" in one_line(err)


def test_unreachable_supabase(env, capsys, tmp_path):
    env(SUPABASE_URL=f"http://127.0.0.1:{closed_port()}", SUPABASE_SERVICE_ROLE_KEY="k",
        CONVEX_URL=f"http://127.0.0.1:{closed_port()}", CONVEX_ADMIN_KEY="k")  # fmt: skip
    code, err = run(capsys, "migrate")
    assert code == 1 and "cannot reach SUPABASE_URL" in one_line(err)
    assert not (tmp_path / ".seed").exists()
    code, err = run(capsys, "workload")
    assert code == 1 and "cannot reach SUPABASE_URL" in one_line(err)
    assert not (tmp_path / "workload.json").exists()


def test_unreachable_convex_wrong_keys_and_missing_functions(env, capsys, tmp_path):
    data = generate(20, seed=1)
    with fake_supabase.serve(data) as sb, fake_convex.serve() as (_fake, cx):
        env(SUPABASE_URL=sb, SUPABASE_SERVICE_ROLE_KEY=fake_supabase.SERVICE_KEY,
            CONVEX_URL=f"http://127.0.0.1:{closed_port()}", CONVEX_ADMIN_KEY=fake_convex.ADMIN_KEY)  # fmt: skip
        code, err = run(capsys, "migrate")
        assert code == 1 and "cannot reach CONVEX_URL" in one_line(err)

        env(CONVEX_URL=cx, CONVEX_ADMIN_KEY="wrong")
        code, err = run(capsys, "migrate")
        line = one_line(err)
        assert code == 1 and "CONVEX_ADMIN_KEY was rejected" in line and "wrong" not in line

        env(CONVEX_ADMIN_KEY=fake_convex.ADMIN_KEY, SUPABASE_SERVICE_ROLE_KEY="bad-key")
        code, err = run(capsys, "migrate")
        line = one_line(err)
        assert code == 1 and "SUPABASE_SERVICE_ROLE_KEY was rejected" in line and "bad-key" not in line
        assert not (tmp_path / ".seed" / "migrate-checkpoint.json").exists()


def test_schema_mismatch_on_either_side(env, capsys):
    data = generate(20, seed=1)
    del data.rows["contact_notes"]  # the fake serves no such table
    with fake_supabase.serve(data) as sb, fake_convex.serve() as (fake, cx):
        env(SUPABASE_URL=sb, SUPABASE_SERVICE_ROLE_KEY=fake_supabase.SERVICE_KEY, CONVEX_URL=cx,
            CONVEX_ADMIN_KEY=fake_convex.ADMIN_KEY)  # fmt: skip
        code, err = run(capsys, "migrate")
        assert code == 1 and "schema mismatch" in one_line(err) and "contact_notes" in err

    with fake_supabase.serve(generate(20, seed=1)) as sb, fake_convex.serve() as (fake, cx):
        env(SUPABASE_URL=sb, CONVEX_URL=cx)
        fake.missing = {"migrate:tableDigest"}
        code, err = run(capsys, "migrate")
        assert code == 1 and "has no function migrate:tableDigest" in one_line(err)


def test_destructive_flags_refuse_non_sandbox_targets(env, capsys):
    env(SUPABASE_URL="https://abcd.supabase.co", SUPABASE_SERVICE_ROLE_KEY="k",
        CONVEX_URL="https://happy-animal-123.convex.cloud", CONVEX_ADMIN_KEY="k")  # fmt: skip
    code, err = run(capsys, "generate", "--reset", "--contacts", "5")
    line = one_line(err)
    assert code == 2 and "refusing" in line and "--i-know-this-is abcd.supabase.co" in line
    code, err = run(capsys, "generate", "--reset", "--contacts", "5", "--i-know-this-is", "other.supabase.co")
    assert code == 2 and "does not match" in one_line(err)
    code, err = run(capsys, "migrate", "--clear")
    assert code == 2 and "happy-animal-123.convex.cloud" in one_line(err)
    env(DATABASE_URL="postgresql://u:secretpw@db.abcd.supabase.co:5432/postgres")
    code, err = run(capsys, "generate", "--reset")
    line = one_line(err)
    assert code == 2 and "db.abcd.supabase.co" in line and "secretpw" not in line


def test_bad_numbers(env, capsys):
    env(SUPABASE_URL="http://127.0.0.1:1", SUPABASE_SERVICE_ROLE_KEY="k", CONVEX_URL="http://127.0.0.1:1",
        CONVEX_ADMIN_KEY="k")  # fmt: skip
    code, err = run(capsys, "migrate", "--batch-rows", "9000")
    assert code == 2 and "--batch-rows" in one_line(err)
    code, err = run(capsys, "generate", "--contacts", "0")
    assert code == 2 and "--contacts" in one_line(err)


def test_db_host_forms():
    assert cli.db_host("postgresql://u:p@127.0.0.1:5432/db") == "127.0.0.1"
    assert cli.db_host("postgresql:///db?host=/tmp/sock") == ""
    assert cli.db_host("host=db.example.com dbname=x") == "db.example.com"
    assert (
        cli.is_local_host("") and cli.is_local_host("localhost") and not cli.is_local_host("db.example.com")
    )


def test_unreachable_database_url(env, capsys):
    env(
        DATABASE_URL=f"postgresql://u:secretpw@127.0.0.1:{closed_port()}/db",
        SUPABASE_URL="http://127.0.0.1:1",
    )
    code, err = run(capsys, "generate", "--contacts", "3")
    line = one_line(err)
    assert code == 1 and "cannot use DATABASE_URL" in line and "secretpw" not in line
