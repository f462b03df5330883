"""Deterministic synthetic CRM data (``python -m seed generate``).

One ``random.Random(seed)`` drives everything, so the same ``--seed`` and
``--contacts`` give byte-identical rows (ids included). Times are epoch
milliseconds, strictly increasing within each contact's conversations,
messages and notes: no two share a millisecond, so "newest first" orders the
same on PostgreSQL and on Convex.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .tables import TABLES

DAY = 86_400_000
# The data ends here, not at "now", so a seed always yields the same rows.
END_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
HISTORY_DAYS = 540

WORKSPACE_NAMES = (
    "Eagle Overseas",
    "Garuda Logistik",
    "Nusantara Travel",
    "Bintang Properti",
    "Samudra Edukasi",
    "Merapi Motor",
    "Kenanga Klinik",
    "Rajawali Umroh",
)

# Indonesian mobile operator prefixes after "628" (Telkomsel, Indosat, XL, Axis, Tri, Smartfren)
OPERATORS = (
    "11", "12", "13", "21", "22", "23", "51", "52", "53",
    "14", "15", "16", "55", "56", "57", "58",
    "17", "18", "19", "59", "77", "78",
    "31", "32", "33", "38",
    "95", "96", "97", "98", "99",
    "81", "82", "83", "84", "85", "86", "87", "88", "89",
)  # fmt: skip

FIRST = (
    "Budi", "Siti", "Agus", "Dewi", "Rizky", "Putri", "Andi", "Sri", "Hendra", "Nur", "Wahyu", "Ayu",
    "Fajar", "Indah", "Eko", "Rina", "Dimas", "Lestari", "Yusuf", "Fitri", "Bayu", "Maya", "Joko",
    "Ratna", "Arif", "Wulan", "Taufik", "Nadia", "Gilang", "Citra", "Hadi", "Mega", "Irfan", "Sari",
)  # fmt: skip
LAST = (
    "Santoso", "Wijaya", "Saputra", "Pratama", "Hidayat", "Kurniawan", "Setiawan", "Nugroho",
    "Siregar", "Nasution", "Lubis", "Harahap", "Simanjuntak", "Wibowo", "Susanto", "Halim",
    "Gunawan", "Rahmawati", "Permata", "Utami", "Hakim", "Firmansyah", "Ramadhan", "Putra",
)  # fmt: skip
MAIL_DOMAINS = ("gmail.com", "yahoo.co.id", "outlook.com", "hotmail.com", "ymail.com", "mail.id")
TAGS = ("vip", "umroh", "visa", "reseller", "b2b", "repeat", "hot-lead", "jakarta", "surabaya", "promo")
LEAD_STATUS = ("new", "contacted", "qualified", "proposal", "won", "lost")
SOURCES = ("whatsapp", "instagram", "facebook-ads", "website", "referral", "walk-in", "tiktok")
CITIES = ("Jakarta", "Surabaya", "Bandung", "Medan", "Semarang", "Makassar", "Denpasar", "Yogyakarta")
WORDS = (
    "halo", "kak", "mau", "tanya", "harga", "paket", "untuk", "bulan", "depan", "apakah", "masih",
    "tersedia", "terima", "kasih", "baik", "kami", "akan", "kirim", "detail", "dokumen", "visa",
    "paspor", "jadwal", "keberangkatan", "bisa", "dicicil", "DP", "berapa", "lokasi", "kantor",
    "di", "mana", "ya", "oke", "siap", "sudah", "transfer", "bukti", "pembayaran", "mohon",
    "ditunggu", "informasinya", "promo", "diskon", "keluarga", "orang", "tiket", "hotel", "dekat",
    "bandara", "the", "price", "please", "send", "brochure", "tomorrow", "meeting", "jam", "besok",
    "pagi", "siang", "sore", "malam", "nomor", "rekening", "konfirmasi", "pesanan", "status",
    "proses", "selesai", "minggu", "ini", "itu", "dengan", "dan", "atau", "tidak", "belum",
)  # fmt: skip
FLOURISH = ("🙏", "👍", "😊", "🙂", "!", "?", "…", "🇮🇩", "Rp", "é")
MESSAGE_TYPES = (("text", 90), ("image", 4), ("template", 3), ("document", 2), ("audio", 1))
NOTE_OPENERS = ("Follow up:", "Catatan:", "Call summary:", "Klien minta", "Reminder:", "")


@dataclass
class Dataset:
    seed: int
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t.name: [] for t in TABLES})

    @property
    def workspaces(self) -> list[dict[str, Any]]:
        return self.rows["workspaces"]

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}

    @property
    def total(self) -> int:
        return sum(len(r) for r in self.rows.values())


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def slug_suffix(seed: int) -> str:
    """Marks a seed's own workspaces: ``generate`` replaces exactly these."""
    return f"-seed{seed}"


def _slug(name: str) -> str:
    return "-".join(name.lower().split())


def _words(rng: random.Random, n: int) -> str:
    words = rng.choices(WORDS, k=n)
    if rng.random() < 0.3:
        words.append(rng.choice(FLOURISH))
    text = " ".join(words)
    return text[0].upper() + text[1:]


def _text_length(rng: random.Random, mu: float, sigma: float, cap: int) -> int:
    # lognormal: mostly short chat lines, a long tail of paragraphs
    return max(1, min(cap, int(rng.lognormvariate(mu, sigma))))


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        digits = 7 if rng.random() < 0.3 else 8
        phone = "628" + rng.choice(OPERATORS) + str(rng.randrange(10 ** (digits - 1), 10**digits))
        if phone not in used:
            used.add(phone)
            return phone


def random_phone(rng: random.Random, used: set[str]) -> str:
    """A valid-format Indonesian mobile number not in ``used`` (added to it)."""
    return _phone(rng, used)


def workspace_count(contacts: int) -> int:
    return max(1, min(len(WORKSPACE_NAMES), 1 + contacts // 5000))


def _metadata(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.3:
        return None
    meta: dict[str, Any] = {"source": rng.choice(SOURCES), "language": rng.choice(("id", "id", "en"))}
    if rng.random() < 0.7:
        meta["city"] = rng.choice(CITIES)
    if rng.random() < 0.4:
        meta["utm"] = {
            "campaign": f"cmp-{rng.randrange(1, 40)}",
            "medium": rng.choice(("cpc", "organic", "story")),
        }
    if rng.random() < 0.5:
        meta["orders"] = rng.randrange(0, 25)
    if rng.random() < 0.3:
        meta["optIn"] = rng.random() < 0.8
    return meta


def generate(contacts: int = 10_000, seed: int = 42, workspaces: int | None = None) -> Dataset:
    """Build the whole dataset in memory (about 170k rows for 10k contacts)."""
    if contacts < 1:
        raise ValueError("--contacts must be at least 1")
    rng = random.Random(seed)
    data = Dataset(seed=seed)
    n_ws = workspaces or workspace_count(contacts)
    if not 1 <= n_ws <= len(WORKSPACE_NAMES):
        raise ValueError(f"--workspaces must be between 1 and {len(WORKSPACE_NAMES)}")
    base = END_MS - (HISTORY_DAYS + 90) * DAY

    members_of: list[list[str]] = []
    agents_of: list[list[str]] = []
    for i in range(n_ws):
        name = WORKSPACE_NAMES[i]
        ws_id = _uuid(rng)
        created = base - rng.randrange(0, 60 * DAY)
        data.rows["workspaces"].append(
            {"id": ws_id, "name": name, "slug": f"{_slug(name)}{slug_suffix(seed)}", "created_at": created}
        )
        roles = ["owner"] + ["admin"] * rng.randint(1, 2) + ["agent"] * rng.randint(3, 8)
        users: list[str] = []
        t = created
        for role in roles:
            t += rng.randrange(1, 20 * DAY)
            user = _uuid(rng)
            users.append(user)
            data.rows["workspace_members"].append(
                {"id": _uuid(rng), "workspace_id": ws_id, "user_id": user, "role": role, "created_at": t}
            )
        members_of.append(users)
        agents_of.append(users[1:])

    # The first workspace ("Eagle Overseas") holds most contacts, like the spike's.
    weights = [6.0] + [4.0 / max(1, n_ws - 1)] * (n_ws - 1) if n_ws > 1 else [1.0]
    used_phones: set[str] = set()
    for _ in range(contacts):
        w = rng.choices(range(n_ws), weights=weights)[0] if n_ws > 1 else 0
        _contact(rng, data, w, members_of[w], agents_of[w], used_phones)
    return data


def _contact(
    rng: random.Random,
    data: Dataset,
    w: int,
    members: list[str],
    agents: list[str],
    used_phones: set[str],
) -> None:
    ws_id = data.rows["workspaces"][w]["id"]
    contact_id = _uuid(rng)

    # Relative timeline first (0 = contact created), then shifted so it ends before END_MS.
    convs: list[dict[str, Any]] = []
    msgs: list[dict[str, Any]] = []
    n_conv = 0 if rng.random() < 0.05 else min(40, int(rng.paretovariate(1.8)))
    t = rng.randrange(60_000, 3 * DAY)
    for ci in range(n_conv):
        conv_id = _uuid(rng)
        created = t
        # Only the newest conversation may be empty: at most one null last_message_at per contact.
        empty = ci == n_conv - 1 and rng.random() < 0.1
        n_msg = 0 if empty else min(400, max(1, int(rng.lognormvariate(1.6, 1.0))))
        t += rng.randrange(1, 5_000)
        last_content: str | None = None
        trailing_inbound = 0
        direction = "inbound"
        for mi in range(n_msg):
            if mi > 0:
                # seconds to hours between messages; +1 keeps every time distinct
                t += int(rng.lognormvariate(11.0, 1.6)) + 1
                direction = "inbound" if rng.random() < 0.5 else "outbound"
            sender = "contact" if direction == "inbound" else ("ai" if rng.random() < 0.4 else "agent")
            mtype = rng.choices([m for m, _ in MESSAGE_TYPES], weights=[p for _, p in MESSAGE_TYPES])[0]
            content = _words(rng, _text_length(rng, 2.2, 0.8, 220))
            if mtype != "text":
                content = f"[{mtype}] {content}"
            msgs.append(
                {
                    "id": _uuid(rng),
                    "workspace_id": ws_id,
                    "conversation_id": conv_id,
                    "direction": direction,
                    "sender_type": sender,
                    "content": content,
                    "message_type": mtype,
                    "created_at": t,
                }
            )
            last_content = content
            trailing_inbound = trailing_inbound + 1 if direction == "inbound" else 0
        status = rng.choices(("open", "pending", "closed"), weights=(3, 2, 5))[0]
        convs.append(
            {
                "id": conv_id,
                "workspace_id": ws_id,
                "contact_id": contact_id,
                "status": status,
                "assigned_to": rng.choice(agents) if agents and rng.random() < 0.7 else None,
                "last_message_at": t if n_msg else None,
                "last_message_preview": last_content[:100] if last_content is not None else None,
                "unread_count": trailing_inbound if status != "closed" else 0,
                "created_at": created,
            }
        )
        # long histories get shorter gaps, so every history fits in HISTORY_DAYS
        t += rng.randrange(DAY // 2, max(DAY, min(45 * DAY, HISTORY_DAYS * DAY // (n_conv + 1))))

    n_notes = 0 if rng.random() < 0.5 else min(50, int(rng.paretovariate(1.5)))
    note_times = sorted(rng.sample(range(1, max(t, n_notes + 1) + 1), n_notes)) if n_notes else []
    span = max([t, *note_times])

    # Anchor: the history ends somewhere in the last HISTORY_DAYS days (never after END_MS).
    start = END_MS - span - rng.randrange(0, max(1, HISTORY_DAYS * DAY - span))
    created_at = start
    last_activity = start
    for c in convs:
        c["created_at"] += start
        if c["last_message_at"] is not None:
            c["last_message_at"] += start
            last_activity = max(last_activity, c["last_message_at"])
    for m in msgs:
        m["created_at"] += start

    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.92 else None
    email = None
    if rng.random() < 0.6:
        local = (name or rng.choice(FIRST)).lower().replace(" ", ".")
        email = f"{local}{rng.randrange(1, 999)}@{rng.choice(MAIL_DOMAINS)}"
    data.rows["contacts"].append(
        {
            "id": contact_id,
            "workspace_id": ws_id,
            "phone": _phone(rng, used_phones),
            "name": name,
            "email": email,
            "tags": sorted(rng.sample(TAGS, rng.choices((0, 1, 2, 3), weights=(4, 3, 2, 1))[0])),
            "lead_status": rng.choice(LEAD_STATUS) if rng.random() < 0.8 else None,
            "lead_score": rng.randrange(0, 101) if rng.random() < 0.75 else None,
            "metadata": _metadata(rng),
            "created_at": created_at,
            "updated_at": min(END_MS, last_activity + rng.randrange(0, 2 * DAY))
            if rng.random() < 0.6
            else created_at,
        }
    )
    data.rows["conversations"].extend(convs)
    data.rows["messages"].extend(msgs)
    for nt in note_times:
        opener = rng.choice(NOTE_OPENERS)
        body = _words(rng, _text_length(rng, 2.6, 0.7, 120))
        data.rows["contact_notes"].append(
            {
                "id": _uuid(rng),
                "workspace_id": ws_id,
                "contact_id": contact_id,
                "author_id": rng.choice(members) if rng.random() < 0.9 else None,
                "content": f"{opener} {body}".strip(),
                "created_at": start + nt,
            }
        )


def iter_rows(data: Dataset) -> Iterator[tuple[str, dict[str, Any]]]:
    for t in TABLES:
        for row in data.rows[t.name]:
            yield t.name, row
