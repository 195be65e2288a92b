"""Derived references: the same email always gets the same one; different emails never share."""

from __future__ import annotations

from typing import Any

import pytest

from flask_dmmail import Mailer, attachment
from flask_dmmail.references import AddressHasher

T = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"
H = AddressHasher(b"k")


def ref(to: str = "a@example.gov.uk", template: str = T, **p: Any) -> str:
    return H.reference(to, template, p)


def test_the_same_email_gets_the_same_reference() -> None:
    assert ref(name="x", n=1) == ref(n=1, name="x")
    assert ref(" A@Example.GOV.UK ") == ref("a@example.gov.uk")
    assert ref(template=T.upper()) == ref()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"a": "1,2"}, {"a": "1", "b": "2"}),  # today's comma-joined values collide here
        ({"a": "1"}, {"b": "1"}),  # today's values-only hash collides here
        ({"a": 1}, {"a": "1"}),
        ({"a": True}, {"a": "True"}),
        ({"a": None}, {"a": ""}),
        ({"a": ["x", "y"]}, {"a": "x, y"}),
        ({}, {"a": None}),
    ],
)
def test_different_emails_never_share_a_reference(
    one: dict[str, Any], other: dict[str, Any]
) -> None:
    assert ref(**one) != ref(**other)


def test_recipient_and_template_are_part_of_it() -> None:
    assert ref("a@example.gov.uk") != ref("b@example.gov.uk")
    assert ref(template=T) != ref(template=T.replace("6f", "7f"))


def test_files_count_by_content_and_options() -> None:
    one = {"f": attachment(b"abc", filename="a.csv")}
    assert H.reference("a@x.gov.uk", T, one) == H.reference("a@x.gov.uk", T, dict(one))
    assert H.reference("a@x.gov.uk", T, one) != H.reference(
        "a@x.gov.uk", T, {"f": attachment(b"abd", filename="a.csv")}
    )


def test_the_key_matters_and_no_address_shows() -> None:
    other = AddressHasher(b"other")
    assert other.reference("a@example.gov.uk", T, {}) != ref()
    assert "example" not in ref()
    assert len(ref()) <= 1000
    assert H.hash_address("A@Example.gov.uk ") == H.hash_address("a@example.gov.uk")
    assert len(H.hash_address("a@example.gov.uk")) == 24


def test_a_mailer_derives_references_from_the_configured_key(mailer: Mailer) -> None:
    prepared = mailer.prepare("a@example.gov.uk", "welcome", {"name": "n", "framework": "f"})
    assert prepared.reference == mailer.hasher.reference(
        "a@example.gov.uk", T, {"name": "n", "framework": "f"}
    )
    assert prepared.reference.startswith("dmmail-")
