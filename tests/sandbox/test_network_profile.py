"""Network profiles: the format, the shipped profiles, --network-rtt, the metadata contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import network
from sandbox.network import (
    LINK_NAMES,
    NetworkError,
    Profile,
    active_profile,
    profile_from_dict,
    resolve,
    summary,
)
from sandbox.network.profile import parse_bandwidth, parse_duration, parse_rtt_overrides, read_profile_file
from tests.sandbox.network_helpers import ROOT


def test_durations_and_rates() -> None:
    assert parse_duration("80ms") == pytest.approx(0.08)
    assert parse_duration(" 0.5ms ") == pytest.approx(0.0005)
    assert parse_duration("250us") == pytest.approx(0.00025)
    assert parse_duration("1.5s") == pytest.approx(1.5)
    assert parse_bandwidth("100mbit") == pytest.approx(1e8)
    assert parse_bandwidth("1.5Gbit") == pytest.approx(1.5e9)
    assert parse_bandwidth("512kbps") == pytest.approx(512e3)
    for bad in ("80", "ms", "-5ms", "80 m", ""):
        with pytest.raises(NetworkError):
            parse_duration(bad, "x")
    with pytest.raises(NetworkError, match="add a unit"):
        parse_duration("80", "--network-rtt supabase")
    for bad in ("fast", "0mbit", "10MB"):
        with pytest.raises(NetworkError):
            parse_bandwidth(bad)


def test_rtt_overrides() -> None:
    assert parse_rtt_overrides("supabase=80ms, convex=20ms") == {"supabase": 0.08, "convex": 0.02}
    for bad, words in (("supabase", "LINK=DURATION"), ("postgres=1ms", "unknown link"),
                       ("app=1ms,app=2ms", "twice"), ("", "expected"), ("app=fast", "duration")):
        with pytest.raises(NetworkError, match=words) as err:
            parse_rtt_overrides(bad)
        assert "\n" not in str(err.value)


def test_every_shipped_profile_loads_and_says_where_its_numbers_come_from() -> None:
    names = network.shipped()
    assert {"loopback", "same-region", "cross-region-us", "asia-us", "spike"} <= set(names)
    assert resolve(None).relayed_links() == [] and resolve("loopback").relayed_links() == []
    for name in names:
        profile = resolve(name)
        assert profile.name == name and profile.description and profile.source == "shipped"
        for link in profile.relayed_links():
            assert profile.link(link).note, (name, link)
            assert profile.link(link).tls in ("none", "1.2", "1.3")
    spike = resolve("spike")
    assert spike.link("supabase").rtt_s == spike.link("app-supabase").rtt_s > 0.2
    assert spike.link("supabase").setup_rtts == 2  # TCP + TLS 1.3


def test_a_profile_file_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "ours.toml"
    toml.write_text(
        'description = "our topology"\n'
        '[defaults]\ntls = "1.2"\njitter = { distribution = "uniform", sigma = "1ms" }\n'
        '[links.supabase]\nrtt = "40ms"\nbandwidth = "50mbit"\nnote = "measured by us"\n'
        '[links.app-convex]\nrtt = "3ms"\njitter = "none"\ntls = "none"\n'
    )
    profile = resolve(str(toml))
    assert profile.name == "ours" and profile.source == str(toml.resolve())
    sup = profile.link("supabase")
    assert (sup.rtt_s, sup.tls, sup.setup_rtts, sup.bandwidth_bps) == (0.04, "1.2", 3, 5e7)
    assert sup.jitter.distribution == "uniform" and sup.jitter.sigma_s == pytest.approx(0.001)
    assert not profile.link("app-convex").jitter.active and profile.link("app-convex").setup_rtts == 1
    assert profile.relayed_links() == ["supabase", "app-convex"]

    as_json = tmp_path / "same.json"
    as_json.write_text(json.dumps({"name": "same", "links": {"convex": {"rtt": "20ms", "tls": "1.3"}}}))
    profile = resolve(str(as_json))
    assert profile.name == "same" and profile.relayed_links() == ["convex"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[links.postgres]\nrtt = "1ms"\n', "links.postgres: unknown link"),
        ('[links.supabase]\nrtt = 80\n', "links.supabase.rtt"),
        ('[links.supabase]\nlatency = "80ms"\n', "unknown key 'latency'"),
        ('[links.supabase]\ntls = "1.1"\n', "links.supabase.tls"),
        ('[links.supabase]\njitter = { distribution = "gauss", sigma = "1ms" }\n', "jitter.distribution"),
        ('[links.supabase]\njitter = { distribution = "normal" }\n', "jitter.sigma: missing"),
        ('colour = "blue"\n', "unknown key 'colour'"),
        ('[links.supabase\n', "not valid TOML"),
    ],
)
def test_a_bad_profile_is_one_line_naming_file_and_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(NetworkError) as err:
        read_profile_file(path)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message


def test_unknown_profile_names_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"shipped: .*spike"):
        resolve("moon")
    with pytest.raises(NetworkError, match="no such file"):
        resolve(str(tmp_path / "missing.toml"))


def test_rtt_overrides_on_a_profile() -> None:
    profile = resolve("cross-region-us", "supabase=80ms,app=5ms")
    assert profile.link("supabase").rtt_s == pytest.approx(0.08)
    assert profile.link("supabase").tls == "1.3"  # the rest of the link stays
    assert profile.link("app").rtt_s == pytest.approx(0.005)
    assert profile.label == "cross-region-us+supabase=80ms,app=5ms"
    bare = resolve(None, "convex=20ms")  # on loopback: only that link, no TLS
    assert bare.relayed_links() == ["convex"] and bare.link("convex").setup_rtts == 1


def test_metadata_round_trips_and_names_every_link(tmp_path: Path) -> None:
    profile = resolve("spike", "app=2ms")
    meta = profile.to_dict()
    assert meta["format"] == "sandbox-network/1"
    assert meta["name"] == "spike+app=2ms" and meta["profile"] == "spike"
    assert list(meta["links"]) == list(LINK_NAMES)
    sup = meta["links"]["supabase"]
    assert sup["rtt_ms"] == 217 and sup["tls"] == "1.3" and sup["setup_rtts"] == 2 and sup["relayed"]
    assert sup["ports"] == [{"listen": 54401, "upstream": 54321, "url": "http://127.0.0.1:54401"}]
    assert [p["listen"] for p in meta["links"]["convex"]["ports"]] == [54402, 54403]
    back = profile_from_dict(json.loads(json.dumps(meta)))
    assert isinstance(back, Profile) and back.to_dict() == meta

    path = network.write_active(tmp_path, profile)
    assert active_profile(tmp_path) == meta
    assert active_profile(env={"SANDBOX_NETWORK": str(path)}) == meta
    assert active_profile(env={}) is None
    assert active_profile(tmp_path / "nowhere") is None
    assert summary(meta).startswith("spike+app=2ms: supabase 217 ms")
    assert "loopback" in summary(resolve(None).to_dict())
    assert "deployments" in summary(None)


def test_cli_network_shows_a_profile_without_starting_anything() -> None:
    env = {**os.environ, "SANDBOX_DIR": "/nonexistent-sandbox-state"}
    run = subprocess.run([sys.executable, "-m", "sandbox", "network", "asia-us", "--network-rtt", "app=3ms", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    meta = json.loads(run.stdout)
    assert meta["links"]["app"]["rtt_ms"] == 3 and meta["links"]["supabase"]["rtt_ms"] == 217
    listed = subprocess.run([sys.executable, "-m", "sandbox", "network", "--list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0 and "spike" in listed.stdout and "same-region" in listed.stdout
    bad = subprocess.run([sys.executable, "-m", "sandbox", "up", "--network", "moon"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown network profile 'moon'")
    assert bad.stderr.count("\n") == 1
    inactive = subprocess.run([sys.executable, "-m", "sandbox", "network"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
    assert inactive.returncode == 1 and "has not been started" in inactive.stderr
