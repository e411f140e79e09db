"""The contact universe: tag arithmetic, per-contact errors, order of entries, fixture loading."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest

from batcher.sandbox import Sandbox, TagUpdate, Universe

from .conftest import SandboxFactory
from .helpers import CONTACT, LOCATION, OTHER_CONTACT, body, post

FOREIGN_LOCATION = "otherLocation0000002"
DELETED = "aDeletedContact00001"
FRESH = "aFreshContact0000001"


def _update(
    type_: Literal["add", "remove"],
    contacts: list[str],
    tags: list[str],
    *,
    remove_all: bool = False,
) -> TagUpdate:
    return TagUpdate(type_, LOCATION, contacts, tags, remove_all)


@pytest.fixture
def universe() -> Universe:
    universe = Universe()
    universe.add_contact(LOCATION, CONTACT, ["tag-1", "tag-2"])
    universe.add_contact(FOREIGN_LOCATION, OTHER_CONTACT, ["x"])
    universe.delete_contact(DELETED)
    return universe


def test_adding_reports_only_tags_not_already_present(universe: Universe) -> None:
    entries, errors = universe.apply(_update("add", [CONTACT], ["tag-2", "vip"]), Counter())
    assert errors == 0
    assert entries == [
        {
            "contactId": CONTACT,
            "message": "Tags updated",
            "type": "success",
            "oldTags": ("tag-1", "tag-2"),
            "tagsAdded": ["vip"],
            "tagsRemoved": [],
        }
    ]
    assert universe.tags(CONTACT) == ("tag-1", "tag-2", "vip")


def test_adding_twice_adds_nothing_the_second_time(universe: Universe) -> None:
    changes: Counter[str] = Counter()
    universe.apply(_update("add", [CONTACT], ["vip"]), changes)
    entries, _ = universe.apply(_update("add", [CONTACT], ["vip"]), changes)
    assert entries[0]["tagsAdded"] == []
    assert changes == {CONTACT: 1}


def test_removing_an_absent_tag_removes_nothing(universe: Universe) -> None:
    changes: Counter[str] = Counter()
    entries, _ = universe.apply(_update("remove", [CONTACT], ["vip", "tag-1"]), changes)
    assert entries[0]["tagsRemoved"] == ["tag-1"]
    assert universe.tags(CONTACT) == ("tag-2",)
    entries, _ = universe.apply(_update("remove", [CONTACT], ["vip"]), changes)
    assert entries[0]["tagsRemoved"] == []
    assert changes == {CONTACT: 1}


def test_tags_are_stored_lower_cased_and_compared_without_case(universe: Universe) -> None:
    """As HighLevel: `TAG-1` is the `tag-1` the contact has, `Tag-2 ` removes `tag-2`, and
    `vip`, `VIP` and `Vip ` added one after another leave one `vip`."""
    entries, _ = universe.apply(_update("add", [CONTACT], ["TAG-1"]), Counter())
    assert entries[0]["tagsAdded"] == []
    entries, _ = universe.apply(_update("remove", [CONTACT], ["Tag-2 "]), Counter())
    assert entries[0]["tagsRemoved"] == ["tag-2"]
    for spelling in ("vip", "VIP", "Vip "):
        universe.apply(_update("add", [CONTACT], [spelling]), Counter())
    assert universe.tags(CONTACT) == ("tag-1", "vip")


def test_a_fixture_s_tags_are_stored_as_the_service_stores_them(tmp_path: Path) -> None:
    """A fixture written with capitals holds lower-cased tags, each once."""
    fixture = tmp_path / "f.json"
    fixture.write_text(json.dumps({"locations": {"L": {CONTACT: ["VIP", "vip", " Lead"]}}}))
    assert Universe.from_fixture(fixture).tags(CONTACT) == ("vip", "lead")


def test_remove_all_tags_removes_every_tag(universe: Universe) -> None:
    entries, _ = universe.apply(_update("remove", [CONTACT], [], remove_all=True), Counter())
    assert entries[0]["oldTags"] == ("tag-1", "tag-2")
    assert entries[0]["tagsRemoved"] == ["tag-1", "tag-2"]
    assert universe.tags(CONTACT) == ()


def test_errors_come_in_request_order_and_duplicates_get_an_entry_each(
    universe: Universe,
) -> None:
    contacts = [CONTACT, "abcdef", DELETED, OTHER_CONTACT, CONTACT, f" {CONTACT}"]
    entries, errors = universe.apply(_update("add", contacts, ["vip"]), Counter())
    assert [(e["contactId"], e["message"]) for e in entries] == [
        (CONTACT, "Tags updated"),
        ("abcdef", "contact id is not a valid firebase id"),
        (DELETED, "contact is deleted"),
        (OTHER_CONTACT, "contact does not belong to account"),
        (CONTACT, "Tags updated"),
        (f" {CONTACT}", "contact id is not a valid firebase id"),  # the server does not trim
    ]
    assert [e["type"] for e in entries] == [
        "success",
        "error",
        "error",
        "error",
        "success",
        "error",
    ]
    assert entries[4]["tagsAdded"] == []  # the first entry already added it
    assert errors == 4
    assert universe.tags(OTHER_CONTACT) == ("x",)


def test_unknown_well_formed_ids_are_created_in_the_requesting_location(universe: Universe) -> None:
    entries, errors = universe.apply(_update("add", [FRESH], ["vip"]), Counter())
    assert (errors, entries[0]["oldTags"], entries[0]["tagsAdded"]) == (0, (), ["vip"])
    assert universe.location_of(FRESH) == LOCATION
    foreign = TagUpdate("add", FOREIGN_LOCATION, [FRESH], ["vip"], False)
    entries, errors = universe.apply(foreign, Counter())
    assert entries[0]["message"] == "contact does not belong to account"


def test_strict_unknown_refuses_ids_missing_from_the_fixture() -> None:
    universe = Universe(strict_unknown=True)
    entries, errors = universe.apply(_update("add", [FRESH], ["vip"]), Counter())
    assert errors == 1
    assert entries[0]["message"] == "contact does not belong to account"
    assert len(universe) == 0


def test_contacts_with_the_same_tags_share_one_tuple() -> None:
    universe = Universe()
    ids = [f"contact{n:013d}" for n in range(1000)]
    universe.apply(_update("add", ids, ["a", "b"]), Counter())
    assert len({id(universe.tags(i)) for i in ids}) == 1


async def test_201_counts_errors_and_says_succeded(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    ok = await post(session, sandbox, body([CONTACT]))
    assert (ok.body["succeded"], ok.body["errorCount"]) == (True, 0)
    assert "succeeded" not in ok.body
    failed = await post(session, sandbox, body([CONTACT, "abcdef"]))
    assert (failed.body["succeded"], failed.body["errorCount"]) == (False, 1)


async def test_v3_adds_succeeded_beside_succeded(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    answer = await post(session, sandbox, body([CONTACT, "abcdef"]), headers={"Version": "v3"})
    assert answer.status == 201
    assert (answer.body["succeded"], answer.body["succeeded"]) == (False, False)


async def test_remove_all_tags_over_http(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    sandbox.universe.add_contact(LOCATION, FRESH, ["a", "b"])
    payload = body([FRESH], [], removeAllTags=True)
    answer = await post(session, sandbox, payload, type_="remove")
    assert answer.body["responses"][0]["tagsRemoved"] == ["a", "b"]
    assert sandbox.universe.tags(FRESH) == ()


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_fixture_loads_locations_tags_and_deleted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "locations": {LOCATION: {CONTACT: ["a"]}, FOREIGN_LOCATION: {OTHER_CONTACT: []}},
            "deleted": [DELETED],
        },
    )
    universe = Universe.from_fixture(path)
    assert universe.tags(CONTACT) == ("a",)
    assert universe.location_of(OTHER_CONTACT) == FOREIGN_LOCATION
    assert universe.is_deleted(DELETED)
    assert len(universe) == 2


async def test_the_sandbox_serves_its_configured_fixture(
    make_sandbox: SandboxFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = _write(tmp_path, {"locations": {LOCATION: {CONTACT: ["a"]}}, "deleted": [DELETED]})
    async with make_sandbox(fixture=path) as sandbox:
        answer = await post(session, sandbox, body([CONTACT, DELETED], ["b"]))
    assert [e["message"] for e in answer.body["responses"]] == [
        "Tags updated",
        "contact is deleted",
    ]
    assert answer.body["responses"][0]["oldTags"] == ["a"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "top level"),
        ({"contacts": {}}, "top level"),
        ({"locations": []}, "'locations'"),
        ({"locations": {LOCATION: []}}, f"locations.{LOCATION}"),
        ({"locations": {LOCATION: {CONTACT: "a"}}}, f"locations.{LOCATION}.{CONTACT}"),
        ({"locations": {LOCATION: {"short": []}}}, "'short' is not 20 letters/digits"),
        ({"locations": {LOCATION: {CONTACT: []}}, "deleted": [CONTACT]}, "given twice"),
        ({"deleted": "x"}, "'deleted'"),
    ],
)
def test_a_bad_fixture_is_refused_with_the_reason(
    tmp_path: Path, document: Any, message: str
) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(ValueError, match=message) as caught:
        Universe.from_fixture(path)
    assert str(path) in str(caught.value)


def test_an_unreadable_fixture_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read fixture"):
        Universe.from_fixture(tmp_path / "missing.json")
