"""The table fingerprint: known vectors, the vectorised path, and equality with
the TypeScript implementation Convex runs (convex/lib/fingerprint.ts)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seed.fingerprint import Digest, canonical_json, digest_docs, fnv1a64, fnv1a64_many
from seed.generate import generate
from seed.tables import TABLES, to_convex

ROOT = Path(__file__).resolve().parents[2]
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
TS = ROOT / "convex" / "lib" / "fingerprint.ts"


def test_fnv1a64_known_vectors():
    # reference values of FNV-1a 64 (draft-eastlake-fnv)
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


@given(st.lists(st.binary(max_size=300), max_size=60))
@settings(max_examples=60, deadline=None)
def test_vectorised_hash_equals_reference(blobs):
    assert [int(h) for h in fnv1a64_many(blobs)] == [fnv1a64(b) for b in blobs]


def test_canonical_json_sorted_compact_unicode_kept():
    doc = {"b": 1, "a": {"z": [1, "é🙏"], "y": None}, "c": 'line\nbreak\t"q"\u0001'}
    assert canonical_json(doc) == '{"a":{"y":null,"z":[1,"é🙏"]},"b":1,"c":"line\\nbreak\\t\\"q\\"\\u0001"}'


def test_digest_is_order_independent_and_sensitive():
    docs = [{"supabaseId": str(i), "n": i} for i in range(50)]
    a, b = digest_docs(docs), digest_docs(list(reversed(docs)))
    assert (a.count, a.hex) == (b.count, b.hex)
    assert digest_docs(docs[:-1]).hex != a.hex
    assert digest_docs([*docs, docs[0]]).hex != a.hex  # a duplicate shows even without the count
    changed = [dict(d) for d in docs]
    changed[7]["n"] = 8
    assert digest_docs(changed).hex != a.hex
    slow = Digest()
    for d in docs:
        slow.add_doc(d)
    assert slow.hex == a.hex


TRICKY: list[dict[str, Any]] = [
    {"supabaseId": "x1", "content": 'tab\tnewline\n cr\r quote" backslash\\ bell\u0007 del\u007f', "n": 0},
    {"supabaseId": "x2", "content": "emoji 🙏🇮🇩 é ü 中文 \u2028 \u2029", "tags": []},
    {"supabaseId": "x3", "metadata": {"b": {"d": 1, "c": [True, False, None]}, "a": -12, "Z": "upper first"}},
    {"supabaseId": "x4", "big": 1793491200000, "neg": -1, "zero": 0},
]


@pytest.mark.skipif(
    not ESBUILD.exists() or shutil.which("node") is None or not TS.exists(), reason="needs node + esbuild"
)
def test_python_and_typescript_fingerprints_agree(tmp_path):
    data = generate(contacts=60, seed=9)
    cases: dict[str, list[dict[str, Any]]] = {
        t.convex: [to_convex(t, r) for r in data.rows[t.name]] for t in TABLES
    }
    cases["tricky"] = TRICKY
    bundle = tmp_path / "fp.mjs"
    subprocess.run(
        [
            str(ESBUILD),
            str(TS),
            "--bundle",
            "--format=esm",
            "--platform=node",
            f"--outfile={bundle}",
            "--log-level=error",
        ],
        check=True,
        timeout=60,
    )
    runner = tmp_path / "run.mjs"
    runner.write_text(
        "import { Digest } from './fp.mjs';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const cases = JSON.parse(readFileSync(0, 'utf8'));\n"
        "const out = {};\n"
        "for (const [k, rows] of Object.entries(cases)) {"
        " const d = new Digest(); rows.forEach(r => d.addRow(r)); out[k] = [d.count, d.hex]; }\n"
        "process.stdout.write(JSON.stringify(out));\n"
    )
    proc = subprocess.run(
        ["node", str(runner)],
        input=json.dumps(cases, ensure_ascii=False),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    js = json.loads(proc.stdout)
    for name, docs in cases.items():
        py = digest_docs(docs)
        assert js[name] == [py.count, py.hex], name
