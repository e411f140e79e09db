"""Generate the bundled samples: the sandbox fixture and three input files that agree with it.

Run `python samples/generate.py [OUTDIR]` (default: this directory). The output is the same bytes
on every run and machine (one seeded random.Random, fixed workbook dates), so the committed files
can be checked against a fresh run. Stdlib only, plus xlsxwriter for the workbook.

What the demo `batcher run --sandbox samples/contacts.csv --action add --tags "vip,newsletter"`
shows: successes (some contacts already have "vip", so only "newsletter" is added), per-contact
errors (deleted contacts; contacts of another location), invalid rows (ids too short, too long,
empty), duplicate rows, ids with spaces around them (valid once trimmed) and a blank line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import string
import sys
import unicodedata
from pathlib import Path

import xlsxwriter

LOCATION = "sandboxLocation00001"  # the sandbox token's default location
OTHER_LOCATION = "otherLocation0000002"  # a location the token may not use

MAIN_CONTACTS = 3400
DELETED_CONTACTS = 12
FOREIGN_CONTACTS = 20
CSV_ROWS = 3000
XLSX_ROWS = 200
EXPORT_ROWS = 500

FIRST_NAMES = [
    "Ana", "José", "Zoë", "Liam", "Noah", "Mía", "Chloé", "Ethan", "Olivia", "Søren",
    "Ava", "Lucas", "Emma", "Mateo", "Sofía", "Björn", "Priya", "Wei", "Aisha", "Omar",
]  # fmt: skip
LAST_NAMES = [
    "García", "Smith", "Müller", "Nguyen", "Johnson", "Rossi", "Kowalski", "Silva", "Brown",
    "O'Neil", "Dubois", "Jensen", "Kim", "Patel", "López", "Novák", "Taylor", "Sato",
]  # fmt: skip
COMPANIES = ["Acme Corp", "Sunshine Realty", "Gulf Dental", "Lone Star Roofing", "", "", ""]
TAG_POOL = ["lead", "florida", "texas", "customer", "webinar-2024", "newsletter", "Lead"]


def _contact_id(rng: random.Random) -> str:
    # Real ids are 20 characters of [A-Za-z0-9] (shared/reference/API-NOTES.md).
    return "".join(rng.choices(string.ascii_letters + string.digits, k=20))


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum() and c.isascii()).lower()


class _People:
    """Names and e-mails per contact id, stable across the files."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._known: dict[str, tuple[str, str, str]] = {}

    def __call__(self, contact_id: str) -> tuple[str, str, str]:
        if contact_id not in self._known:
            first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(LAST_NAMES)
            email = f"{_ascii(first)}.{_ascii(last)}{len(self._known) + 1}@example.com"
            self._known[contact_id] = (first, last, email)
        return self._known[contact_id]


def build(rng: random.Random) -> dict[str, bytes]:
    """Every sample file's name and bytes."""
    ids = list(dict.fromkeys(_contact_id(rng) for _ in range(MAIN_CONTACTS * 2)))
    main = ids[:MAIN_CONTACTS]
    deleted = ids[MAIN_CONTACTS : MAIN_CONTACTS + DELETED_CONTACTS]
    foreign = ids[MAIN_CONTACTS + DELETED_CONTACTS :][:FOREIGN_CONTACTS]
    tags: dict[str, list[str]] = {}
    for index, contact_id in enumerate(main):
        own = ["vip"] if index % 10 == 3 else []  # one contact in ten already has "vip"
        own += rng.sample(TAG_POOL, k=rng.choice((0, 0, 1, 1, 2, 3)))
        # As HighLevel stores them: lower-cased, so "Lead" and "lead" are one tag.
        tags[contact_id] = list(dict.fromkeys(tag.lower() for tag in own))
    locations = {
        LOCATION: tags,
        OTHER_LOCATION: {c: [t.lower() for t in rng.sample(TAG_POOL, k=1)] for c in foreign},
    }
    people = _People(rng)
    return {
        "sandbox-fixture.json": _fixture_json(locations, deleted),
        "contacts.csv": _contacts_csv(rng, main, deleted, foreign, people),
        "contacts.xlsx": _contacts_xlsx(rng, main, tags, deleted, foreign, people),
        "highlevel_export.csv": _highlevel_export(rng, main, tags, people),
    }


def _fixture_json(locations: dict[str, dict[str, list[str]]], deleted: list[str]) -> bytes:
    """The fixture (format: batcher/sandbox/universe.py), one contact per line: small diffs."""
    blocks = []
    for location_id, contacts in locations.items():
        lines = [
            f"    {json.dumps(c)}: {json.dumps(t, ensure_ascii=False)}" for c, t in contacts.items()
        ]
        blocks.append(f"  {json.dumps(location_id)}: {{\n" + ",\n".join(lines) + "\n  }")
    gone = ",\n".join(f"  {json.dumps(c)}" for c in deleted)
    text = '{"locations": {\n' + ",\n".join(blocks) + '\n},\n"deleted": [\n' + gone + "\n]}\n"
    return text.encode("utf-8")


def _contacts_csv(
    rng: random.Random, main: list[str], deleted: list[str], foreign: list[str], people: _People
) -> bytes:
    ids = main[: CSV_ROWS - 20]
    odd = [
        *deleted[:5],  # "contact is deleted"
        *foreign[:5],  # "contact does not belong to account"
        "abc123",  # invalid: too short
        "",  # invalid: empty
        "",
        main[0] + "X",  # invalid: 21 characters
        f"  {main[CSV_ROWS]}  ",  # valid once trimmed
        f" {main[CSV_ROWS + 1]}",
        f"{main[CSV_ROWS + 2]}\u00a0",  # a no-break space is trimmed too
    ]
    ids += odd
    rng.shuffle(ids)
    # Exact copies of earlier rows: duplicates of the operation, sent once.
    for position in (40, 1200, 2500):
        ids.insert(position + 7, ids[position])
    assert len(ids) == CSV_ROWS, len(ids)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["contact_id", "first_name", "last_name", "email"])
    for row, contact_id in enumerate(ids, start=1):
        first, last, email = people(contact_id.strip()) if contact_id else ("", "", "")
        writer.writerow([contact_id, first, last, email])
        if row == 1500:
            out.write("\n")  # a blank line is not a row
    return out.getvalue().encode("utf-8")


def _contacts_xlsx(
    rng: random.Random,
    main: list[str],
    tags: dict[str, list[str]],
    deleted: list[str],
    foreign: list[str],
    people: _People,
) -> bytes:
    rows: list[tuple[str, str, str]] = []
    for contact_id in main[CSV_ROWS + 3 : CSV_ROWS + 3 + XLSX_ROWS - 4]:
        current = tags[contact_id]
        if current and rng.random() < 0.5:
            # Remove one tag the contact has, and sometimes one it has not (not "removed").
            removal = [rng.choice(current)] + (["florida"] if "florida" not in current else [])
            rows.append((contact_id, ",".join(removal), "remove"))
        else:
            rows.append(
                (contact_id, ", ".join(rng.sample(["vip", "webinar-2025", "texas"], 2)), "add")
            )
    rows.insert(17, (main[CSV_ROWS + 300], "vip", "delete"))  # invalid action
    rows.insert(60, (deleted[6], "vip", "add"))  # contact is deleted
    rows.insert(90, (foreign[6], "lead", "remove"))  # does not belong to account
    rows.insert(120, (rows[30][0], rows[30][1], rows[30][2]))  # duplicate of row 31
    assert len(rows) == XLSX_ROWS, len(rows)
    out = io.BytesIO()
    workbook = xlsxwriter.Workbook(out, {"in_memory": True})
    workbook.set_properties({"created": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)})
    sheet = workbook.add_worksheet("Contacts")
    for column, title in enumerate(["Contact ID", "Tags", "Action", "Email"]):
        sheet.write_string(0, column, title)
    for number, (contact_id, row_tags, action) in enumerate(rows, start=1):
        for column, value in enumerate([contact_id, row_tags, action, people(contact_id)[2]]):
            sheet.write_string(number, column, value)  # text cells: nothing is a formula
    workbook.close()
    return out.getvalue()


def _highlevel_export(
    rng: random.Random, main: list[str], tags: dict[str, list[str]], people: _People
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["Contact Id", "First Name", "Last Name", "Business Name", "Company Name", "Phone",
         "Email", "Created", "Last Activity", "Tags"]
    )  # fmt: skip
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    for contact_id in main[-EXPORT_ROWS:]:
        first, last, email = people(contact_id)
        created = start + dt.timedelta(minutes=rng.randrange(600_000))
        active = created + dt.timedelta(minutes=rng.randrange(100_000))
        company = rng.choice(COMPANIES)
        phone = f"+1 555 {rng.randrange(1000):03d} {rng.randrange(10000):04d}"
        writer.writerow(
            [contact_id, first, last, company, company, phone, email,
             created.strftime("%Y-%m-%d %H:%M:%S"), active.strftime("%Y-%m-%d %H:%M:%S"),
             ",".join(tags[contact_id])]
        )  # fmt: skip
    return out.getvalue().encode("utf-8")


def main(argv: list[str]) -> None:
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    target.mkdir(parents=True, exist_ok=True)
    for name, content in build(random.Random(20250501)).items():
        (target / name).write_bytes(content)
        print(f"wrote {target / name}")


if __name__ == "__main__":
    main(sys.argv)
