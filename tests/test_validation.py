"""flask_dmmail.validation: the checks that run before any network call.

The canonical forms (``canonical_address``, ``canonical_domain``,
``remove_obscure_characters``) and the ``is_*`` predicates are the module's API: the
redirect, the stage guard and references compare addresses through them. The ``check_*``
functions are what ``Mailer.send`` runs on its arguments; here each is driven directly, for
the reasons its messages give and for the values at its limits (``Mailer.send`` refusing
them before any request is in tests/test_send.py). No message repeats the value it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import Mailer, attachment
from flask_dmmail.errors import (
    InvalidEmailAddressError,
    InvalidOptionError,
    InvalidPersonalisationError,
    UnknownTemplateError,
)
from flask_dmmail.sandbox import Sandbox
from flask_dmmail.validation import (
    MAX_REFERENCE_LENGTH,
    canonical_address,
    canonical_domain,
    check_email_address,
    check_one_click_unsubscribe_url,
    check_personalisation,
    check_reference,
    check_sanitise_content_for,
    check_scheduled_for,
    check_uuid,
    is_unicode,
    is_uri,
    is_uuid,
    remove_obscure_characters,
)

from .secrets_scan import register_secret

ZERO_WIDTH = "\u180e\u200b\u200c\u200d\u2060\ufeff"
UUID = "f33517ff-2a88-4f6e-b855-c550268ce08a"

# -- canonical forms -------------------------------------------------------------------------


def test_obscure_characters_are_the_zero_width_ones_notify_removes() -> None:
    assert remove_obscure_characters("a" + "b".join(ZERO_WIDTH) + "c") == "a" + "b" * 5 + "c"
    # Spaces, no-break spaces and soft hyphens are not among them.
    assert remove_obscure_characters("a b\u00a0c\u00add") == "a b\u00a0c\u00add"


@pytest.mark.parametrize(
    ("domain", "canonical"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        (" exam\u200bple.com ", "example.com"),
        ("Ｅｘａｍｐｌｅ。ＣＯＭ", "example.com"),  # full-width letters, ideographic full stop
        ("exa\u00admple.com", "example.com"),  # a soft hyphen encodes to nothing
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("straße.test", "strasse.test"),  # IDNA 2003, as Notify
        # a label of 64 letters cannot be IDNA-encoded: cleaned and lower-cased only
        ("A" * 64 + ".COM", "a" * 64 + ".com"),
    ],
)
def test_canonical_domain(domain: str, canonical: str) -> None:
    assert canonical_domain(domain) == canonical


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("  Buyer@Exam\u200bple.COM.\u00a0", "buyer@example.com"),
        ("Ada.Lovelace@Bücher.Example", "ada.lovelace@xn--bcher-kva.example"),
        ("le\u200bad@SUPPLIER.co.uk", "lead@supplier.co.uk"),
        ("No-At-Sign\u200b ", "no-at-sign"),  # not an address: still one canonical form
    ],
)
def test_canonical_address(address: str, canonical: str) -> None:
    assert canonical_address(address) == canonical


def test_every_spelling_of_one_address_has_the_same_canonical_form() -> None:
    spellings = [
        "buyer@example.com",
        "BUYER@EXAMPLE.COM",
        "buyer@ｅｘａｍｐｌｅ.com",
        "buyer@example．com",
        "buy\u2060er@example.com\ufeff",
        "\tbuyer@example.com.\n",
    ]
    assert {canonical_address(s) for s in spellings} == {"buyer@example.com"}


def test_is_unicode_is_false_only_for_lone_surrogates() -> None:
    assert is_unicode("café, 東京, \U0001f600")
    assert not is_unicode("report\udcff.csv")  # what errors="surrogateescape" makes
    assert not is_unicode("\ud83d")


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        ("https://www.example.gov.uk/unsubscribe?token=abc", True),
        ("https://example.gov.uk/%C3%A4", True),
        ("mailto:someone@example.gov.uk", True),
        ("/unsubscribe", False),  # a relative reference is not a URI
        ("https://exämple.gov.uk/", False),  # non-ASCII must be percent-encoded
        ("https://example.gov.uk/a b", False),
    ],
)
def test_is_uri_follows_rfc_3986(value: str, uri: bool) -> None:
    assert is_uri(value) is uri


# -- email addresses -------------------------------------------------------------------------

LONGEST_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (" \u00a0Ada@Example.gov.uk\n", "Ada@Example.gov.uk"),  # trimmed, case kept
        ("ada@exam\u200bple.gov.uk", "ada@example.gov.uk"),
        ("o'brien+tag@sub.example.gov.uk", "o'brien+tag@sub.example.gov.uk"),
        ("ada@bücher.example", "ada@bücher.example"),
        ("ada@example.xn--p1ai", "ada@example.xn--p1ai"),
        ("a" * 66 + "@" + LONGEST_HOST, "a" * 66 + "@" + LONGEST_HOST),  # 320 characters
    ],
    ids=["trimmed", "zero-width", "punctuation", "unicode-domain", "punycode-tld", "longest"],
)
def test_an_address_notify_takes_comes_back_as_notify_will_deliver_it(
    given: str, sent: str
) -> None:
    assert check_email_address(given) == sent


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("a" * 67 + "@" + LONGEST_HOST, "longer than 320 characters"),
        ("private..person@example.gov.uk", "contains '..'"),
        ("private.person.example.gov.uk", "no '@'"),
        ("private@person@example.gov.uk", "more than one"),
        ("private person@example.gov.uk", "a character Notify does not allow"),
        ("private.person@" + ("a" * 63 + ".") * 4 + "uk", "domain is longer than 253"),
        ("private.person@" + "ü" * 70 + ".gov.uk", "cannot be encoded"),
        ("private.person@localhost", "has no dot"),
        ("private.person@-example.gov.uk", "a part of its domain"),
        ("private.person@exa_mple.gov.uk", "a part of its domain"),
        ("private.person@example.c", "top-level domain is not 2 to 63 letters"),
        ("private.person@example.123", "top-level domain is not 2 to 63 letters"),
    ],
)
def test_a_refused_address_says_why_and_never_shows_the_address(address: str, reason: str) -> None:
    register_secret(address, kind="recipient")
    with pytest.raises(InvalidEmailAddressError) as raised:
        check_email_address(address)
    message = str(raised.value)
    assert "GOV.UK Notify's rules" in message and "Correct the address" in message
    assert reason in message.split("Here ", 1)[1]
    assert "private" not in message


@pytest.mark.parametrize("blank", ["", "  \n", ZERO_WIDTH, "\u00a0"])
def test_a_blank_address_is_empty(blank: str) -> None:
    with pytest.raises(InvalidEmailAddressError, match="The recipient is empty"):
        check_email_address(blank)


def test_an_address_that_is_not_text_names_its_type() -> None:
    with pytest.raises(InvalidEmailAddressError, match="must be a string, not bytes"):
        check_email_address(b"a@example.gov.uk")


# -- ids and template names ------------------------------------------------------------------


def test_a_uuid_is_only_the_canonical_form_and_comes_back_lower_cased() -> None:
    assert check_uuid(UUID.upper(), "reply_to_id") == UUID
    assert is_uuid(UUID) and not is_uuid(UUID.replace("-", "")) and not is_uuid(123)
    for bad in (UUID.replace("-", ""), "{" + UUID + "}", UUID + "0", None):
        with pytest.raises(InvalidOptionError, match=r"^reply_to_id must be a UUID like"):
            check_uuid(bad, "reply_to_id")


def test_a_mailer_without_template_names_says_none_are_configured(
    make_app: Callable[..., Flask], sandbox: Sandbox
) -> None:
    mailer: Mailer = make_app(DM_NOTIFY_TEMPLATES={}).extensions["dmmail"]
    with pytest.raises(UnknownTemplateError, match=r"Known names: \(none configured\)\."):
        mailer.send("a@example.gov.uk", "welcome")
    with pytest.raises(UnknownTemplateError, match="not float"):
        mailer.send("a@example.gov.uk", 1.5)  # type: ignore[arg-type]
    assert sandbox.state.outbox() == []


# -- personalisation -------------------------------------------------------------------------


def test_personalisation_comes_back_as_a_plain_copy() -> None:
    file = attachment(b"a,b\n", is_csv=True)
    given: dict[str, Any] = {
        "name": "Ada",
        "tags": ("a", 1, 2.5, True, None),
        "count": 10**100,
        "doc": file,
    }
    checked = check_personalisation(given)
    assert checked == {**given, "tags": ["a", 1, 2.5, True, None]}
    assert checked is not given and checked["doc"] is file
    given["name"] = "changed"
    assert checked["name"] == "Ada"
    assert check_personalisation(None) == {}


@pytest.mark.parametrize(
    ("personalisation", "words"),
    [
        (["name"], "must be a mapping of placeholder names to values, not list"),
        ({"": "x"}, "non-empty string naming a placeholder"),
        ({"  ": "x"}, "non-empty string naming a placeholder"),
        ({"na\udcffme": "x"}, "A personalisation key is not valid Unicode"),
        ({"name": "Secret\udcffValue"}, "The value of 'name' is not valid Unicode"),
        ({"name": {"nested": "SecretValue"}}, "The value of 'name' is a dict; use a string"),
        ({"tags": ["ok", {"SecretValue": 1}]}, "The value of the list under 'tags' is a dict"),
        ({"tags": [["SecretValue"]]}, "The value of the list under 'tags' is a list"),
        ({"score": float("inf")}, "The value of 'score' is not a finite number"),
        ({"score": -(10**5000)}, "The value of 'score' is a whole number of over 4,000 digits"),
        ({"doc": b"SecretValue"}, "flask_dmmail.attachment(...) for a file"),
    ],
    ids=[
        "list",
        "empty-key",
        "blank-key",
        "surrogate-key",
        "surrogate-value",
        "dict",
        "dict-in-list",
        "list-in-list",
        "infinity",
        "huge-int",
        "bytes",
    ],
)
def test_refused_personalisation_names_the_key_never_the_value(
    personalisation: object, words: str
) -> None:
    with pytest.raises(InvalidPersonalisationError) as raised:
        check_personalisation(personalisation)
    assert words in str(raised.value)
    assert "SecretValue" not in str(raised.value)


# -- references, sanitise_content_for, the unsubscribe link ----------------------------------


def test_a_reference_may_be_up_to_a_thousand_characters() -> None:
    assert check_reference("r" * MAX_REFERENCE_LENGTH) == "r" * MAX_REFERENCE_LENGTH
    with pytest.raises(InvalidOptionError) as raised:
        check_reference("r" * (MAX_REFERENCE_LENGTH + 1))
    assert str(raised.value) == (
        "reference is 1001 characters long; Notify takes at most 1000. "
        "Shorten it (or hash the long part)."
    )


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        (42, "reference must be a string, not int"),
        ("", "pass None to derive one"),
        ("ref\udcff", "reference is not valid Unicode text"),
    ],
)
def test_a_refused_reference_says_what_to_pass(reference: object, words: str) -> None:
    with pytest.raises(InvalidOptionError, match=words):
        check_reference(reference)


def test_sanitise_content_for_is_a_sorted_set_of_keys() -> None:
    assert check_sanitise_content_for(None) == ()
    assert check_sanitise_content_for(["name", "bio", "name"]) == ("bio", "name")
    assert check_sanitise_content_for(frozenset({"name"})) == ("name",)
    with pytest.raises(InvalidOptionError, match="must be a list of personalisation keys"):
        check_sanitise_content_for("name")  # a string is not a list of keys
    for bad in ([""], [" "], [3], ["na\udcffme"]):
        with pytest.raises(InvalidOptionError, match="non-empty personalisation key"):
            check_sanitise_content_for(bad)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.gov.uk/unsubscribe?token=abc123",
        "https://example.gov.uk:8443/u/%C3%A4",
    ],
)
def test_an_absolute_https_unsubscribe_url_is_taken_as_given(url: str) -> None:
    assert check_one_click_unsubscribe_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["HTTPS://example.gov.uk/u", "https:///u", "https://exa mple.gov.uk/u", "ftp://x.uk/u", 42],
)
def test_an_unsubscribe_url_notify_refuses_is_refused_with_an_example(url: object) -> None:
    with pytest.raises(InvalidOptionError, match=r"absolute https:// URL \(RFC 3986"):
        check_one_click_unsubscribe_url(url)


# -- scheduled_for, against a fixed clock ----------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "sent"),
    [
        (NOW + timedelta(hours=1), "2026-03-01T13:00:00"),
        (NOW + timedelta(hours=1, microseconds=500_000), "2026-03-01T13:00:00"),
        (NOW + timedelta(hours=24), "2026-03-02T12:00:00"),  # the furthest Notify takes
        (NOW + timedelta(seconds=1), "2026-03-01T12:00:01"),
        (datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=1))), "2026-03-01T13:30:00"),
        ("2026-03-01T14:30:00+01:00", "2026-03-01T13:30:00"),
        ("2026-03-01T13:00:00Z", "2026-03-01T13:00:00"),
    ],
)
def test_scheduled_for_is_sent_in_utc(when: object, sent: str) -> None:
    assert check_scheduled_for(when, now=NOW) == sent


@pytest.mark.parametrize(
    ("when", "words"),
    [
        (NOW, "is in the past"),
        (NOW - timedelta(minutes=1), "is in the past"),
        (NOW + timedelta(hours=24, seconds=1), "more than 24 hours ahead"),
        (datetime(2026, 3, 1, 13, 0), "has no time zone"),
        ("2026-03-01T13:00:00", "has no time zone"),
        ("tomorrow", "is not an ISO 8601 date and time"),
        (1_772_370_000, "must be an aware datetime or an ISO 8601 string, not int"),
        (datetime.min.replace(tzinfo=timezone(timedelta(hours=5))), "not a time Notify can"),
    ],
)
def test_a_refused_scheduled_for_says_what_notify_takes(when: object, words: str) -> None:
    with pytest.raises(InvalidOptionError, match=words):
        check_scheduled_for(when, now=NOW)
