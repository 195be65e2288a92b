"""DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS: what it catches, and what must slip past it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from flask_dmmail.errors import InvalidEmailAddressError
from flask_dmmail.sandbox import Sandbox

# A stored address (Notify never stores its simulate-delivered smoke-test addresses).
SAFE = "functional-tests@digitalmarketplace.service.gov.uk"
REDIRECTS = {"example.com": SAFE, "User.Marketplace.Team.": SAFE}
PERSONAL = {"name": "N", "framework": "F"}


@pytest.fixture
def live_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS=REDIRECTS)


@pytest.mark.parametrize(
    ("recipient", "redirected"),
    [
        ("buyer@example.com", True),
        ("BUYER@EXAMPLE.COM", True),
        ("buyer@Example.Com", True),
        ("  buyer@example.com  ", True),
        ("\u200bbuyer@example.com", True),
        ("buyer@sub.example.com", True),
        ("buyer@a.b.c.example.com", True),
        ("buyer@user.marketplace.team", True),
        ("buyer@USER.marketplace.TEAM", True),
        ("buyer@notexample.com", False),
        ("buyer@example.co", False),
        ("buyer@example.com.evil.org", False),
        ("buyer@examplecom.org", False),
        ("buyer@example-com.org", False),
        ("buyer@examp1e.com", False),
        ("buyer@xn--exmple-cua.com", False),
        ("example.com@other.gov.uk", False),
        ("buyer@marketplace.team", False),
        ("buyer@team", None),
        ("buyer@example.com.", None),
        ("buyer@example..com", None),
        ("buyer@exаmple.com", False),  # Cyrillic 'а': a different domain
    ],
)
def test_redirect_table(
    live_app: Flask, sandbox: Sandbox, recipient: str, redirected: bool | None
) -> None:
    mailer = live_app.extensions["dmmail"]
    if redirected is None:
        with pytest.raises(InvalidEmailAddressError):
            mailer.send(recipient, "welcome", PERSONAL)
        assert sandbox.state.outbox() == []
        return
    sent = mailer.send(recipient, "welcome", PERSONAL)
    assert sent is not None
    stored = sandbox.state.get(sent.id)
    assert stored is not None
    assert sent.redirected is redirected
    assert sent.to == recipient.strip().strip("\u200b")
    if redirected:
        assert sent.sent_to == SAFE
        assert stored.email_address == SAFE
    else:
        assert sent.sent_to == sent.to
        assert stored.email_address == sent.to


def test_reference_and_dedupe_follow_the_original_recipient(
    live_app: Flask, make_app: Callable[..., Flask]
) -> None:
    mailer = live_app.extensions["dmmail"]
    first = mailer.send("one@example.com", "welcome", PERSONAL)
    second = mailer.send("two@example.com", "welcome", PERSONAL)
    assert first is not None and second is not None
    assert first.sent_to == second.sent_to == SAFE
    assert first.reference != second.reference
    plain = make_app().extensions["dmmail"]
    unredirected = plain.prepare("one@example.com", "welcome", PERSONAL)
    assert unredirected.reference == first.reference
    assert mailer.send("two@example.com", "welcome", PERSONAL, allow_resend=False) is None
    assert mailer.send("three@example.com", "welcome", PERSONAL, allow_resend=False) is not None


def test_an_empty_map_redirects_nothing(make_app: Callable[..., Flask]) -> None:
    app = make_app(DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS={})
    sent = app.extensions["dmmail"].send("buyer@example.com", "welcome", PERSONAL)
    assert sent is not None and not sent.redirected
