"""Property tests: arbitrary input is refused with a typed error, and refused input never
reaches Notify.

``Mailer.send`` gets arbitrary addresses, templates, personalisation and options and is
pointed at a sandbox whose every HTTP request is counted. The only exceptions allowed are
``DMMailError``s; an ``InvalidInputError`` (refused locally) must leave the request count
and the outbox unchanged; Notify's own schema refusals (``NotifyValidationError``) and
server errors must never happen, because the local checks are meant to catch everything
the schema would; and no message repeats the address or a personalisation value.
"""

from __future__ import annotations

import copy
import json
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flask_dmmail import DMMail, Mailer, SentEmail, errors
from flask_dmmail.bulk import BulkReport
from flask_dmmail.cli.notify import _personalisation
from flask_dmmail.errors import (
    BulkAbortedError,
    DMMailError,
    InvalidInputError,
    NotifyBadRequestError,
    NotifyError,
    NotifyUnavailableError,
    NotifyValidationError,
    RecipientsError,
    TemplateNotFoundError,
)
from flask_dmmail.sandbox import Sandbox, SandboxState, create_app
from flask_dmmail.webhooks import (
    NOTIFY_CALLBACKS_PATH,
    DeliveryReceipt,
    InvalidReceipt,
    parse_delivery_receipt,
)

from .conftest import REPLY_TO_ID, RESET_ID, SEED, TEMPLATES, WELCOME_ID
from .secrets_scan import register_secret

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class CountingMiddleware:
    """Counts every HTTP request the sandbox receives."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.count = 0
        self.posts = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._lock:
            self.count += 1
            if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").startswith(
                "/v2/notifications/email"
            ):
                self.posts += 1
        return self.app(environ, start_response)


class Target:
    def __init__(self) -> None:
        self.state = SandboxState(copy.deepcopy(SEED), rate_limit=1_000_000)
        app = create_app(self.state)
        self.counter = CountingMiddleware(app.wsgi_app)
        app.wsgi_app = self.counter  # type: ignore[method-assign]
        self.sandbox = Sandbox.serve(app)
        register_secret(self.sandbox.keys.test[-36:], kind="api key")
        self.app = Flask("properties")
        self.app.config.update(
            SECRET_KEY="properties",
            DM_NOTIFY_KEY=self.sandbox.keys.test,
            DM_NOTIFY_BASE_URL=self.sandbox.url,
            DM_NOTIFY_TEMPLATES=TEMPLATES,
            DM_NOTIFY_RETRIES=0,
            DM_NOTIFY_TIMEOUT=10,
            DM_NOTIFY_CALLBACK_TOKEN="property-token-0123456789",
            DM_MAIL_SANDBOX=False,
            DM_ENVIRONMENT="production",
        )
        DMMail(self.app)
        self.mailer: Mailer = self.app.extensions["dmmail"]
        self._tmp = tempfile.TemporaryDirectory(prefix="dmmail-properties-")
        self.journal_dir = Path(self._tmp.name)

    def outbox_size(self) -> int:
        return len(self.state.notify.notifications)

    def close(self) -> None:
        self.mailer.close()
        self.sandbox.stop()
        self._tmp.cleanup()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


# -- strategies -------------------------------------------------------------------------------

#: Text that is not valid Unicode: what ``errors="surrogateescape"`` makes of bad bytes
#: (command-line arguments, file names).
SURROGATE_TEXT = st.builds(
    lambda head, odd: head + odd,
    st.text(max_size=5),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),
)
#: Distinctive values: registered with the session's secrets scan and checked in messages.
SENTINEL = st.from_regex(r"pv[A-Z]{4}[0-9]{4}", fullmatch=True)
LOCAL_PART = st.from_regex(r"[a-z]{1,8}(\.[a-z0-9]{1,5})?", fullmatch=True)
DOMAINS = st.sampled_from(
    ["example.gov.uk", "digital.cabinet-office.gov.uk", "simulator.notify", "xn--bcher-kva.de"]
)
VALID_ADDRESS = st.builds(lambda local, domain: f"zz{local}@{domain}", LOCAL_PART, DOMAINS)

ADDRESSES = st.one_of(
    VALID_ADDRESS.map(str.upper),
    st.builds(
        lambda a, pad: f"{pad}{a}{pad}", VALID_ADDRESS, st.sampled_from([" ", "\u200b", "\t\n"])
    ),
    VALID_ADDRESS.map(lambda a: a.replace("@", "@@")),
    VALID_ADDRESS.map(lambda a: a.replace("@", "..@")),
    VALID_ADDRESS.map(lambda a: a + "."),
    VALID_ADDRESS.map(lambda a: a.rsplit(".", 1)[0]),
    VALID_ADDRESS.map(lambda a: "a" * 320 + a),
    st.emails(),
    st.text(max_size=40),
    st.builds(lambda a, t: t + a, VALID_ADDRESS, SURROGATE_TEXT),
    st.none(),
    st.integers(),
    st.binary(max_size=10),
    st.lists(VALID_ADDRESS, max_size=2),
)
TEMPLATE_ARGS = st.one_of(
    st.uuids().map(str),
    st.uuids(),
    st.text(max_size=20),
    SURROGATE_TEXT,
    st.none(),
    st.integers(),
)
SCALARS = st.one_of(
    SURROGATE_TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    SENTINEL,
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS, SCALARS),
    st.binary(max_size=8),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=2),
    st.sets(st.integers(), max_size=2),
    st.complex_numbers(allow_nan=False),
    st.builds(object),
    st.lists(st.lists(SCALARS, max_size=2), max_size=2),
)
KEYS = st.one_of(
    SURROGATE_TEXT,
    st.sampled_from(["name", "framework", "url", "Name", "first_name"]),
    st.text(max_size=10),
    st.integers(),
    st.none(),
    st.just("  "),
)
PERSONALISATION = st.one_of(
    st.none(),
    st.fixed_dictionaries({"name": VALUES, "framework": VALUES}),
    st.fixed_dictionaries({"url": VALUES}),
    st.dictionaries(KEYS, VALUES, max_size=4),
    st.lists(SCALARS, max_size=2),
    st.text(max_size=5),
    st.integers(),
)
ANY_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "reference": st.one_of(
            st.none(),
            st.text(max_size=20),
            SURROGATE_TEXT,
            st.just(""),
            st.integers(min_value=995, max_value=1005).map(lambda n: "r" * n),
            st.integers(),
        ),
        "reply_to_id": st.one_of(
            st.none(), st.just(REPLY_TO_ID), st.uuids().map(str), st.text(max_size=10), st.uuids()
        ),
        "one_click_unsubscribe_url": st.one_of(
            st.none(),
            st.just("https://www.example.gov.uk/unsubscribe?t=1"),
            st.sampled_from(["http://www.example.gov.uk/u", "https://", "https://a b.com", "x"]),
            SURROGATE_TEXT.map(lambda t: "https://www.example.gov.uk/" + t),
            st.text(max_size=20),
            st.integers(),
        ),
        "scheduled_for": st.one_of(
            st.none(),
            st.floats(min_value=-2, max_value=30).map(
                lambda h: (datetime.now(UTC) + timedelta(hours=h)).isoformat()
            ),
            st.floats(min_value=0.1, max_value=23).map(
                lambda h: datetime.now(UTC) + timedelta(hours=h)
            ),
            st.datetimes(),
            st.datetimes(timezones=st.just(UTC)),
            st.text(max_size=25),
            st.integers(),
        ),
        "allow_resend": st.booleans(),
    },
)


# Half of each argument is drawn valid, so a good share of examples is sent (and the
# checks of the send path are exercised with one bad argument among good ones).
VALID_TEMPLATE = st.sampled_from(
    ["welcome", "reset_password", WELCOME_ID, WELCOME_ID.upper(), RESET_ID]
)
VALID_SCALAR = st.one_of(st.text(max_size=30), SENTINEL, st.integers(), st.booleans())
VALID_PERSONALISATION = st.fixed_dictionaries(
    {"name": VALID_SCALAR, "framework": VALID_SCALAR, "url": VALID_SCALAR},
    optional={"extra": st.lists(VALID_SCALAR, max_size=3)},
)
VALID_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "reference": st.text(min_size=1, max_size=40),
        "reply_to_id": st.just(REPLY_TO_ID),
        "one_click_unsubscribe_url": st.just("https://www.example.gov.uk/unsubscribe?t=1"),
        "scheduled_for": st.floats(min_value=0.1, max_value=23).map(
            lambda h: datetime.now(UTC) + timedelta(hours=h)
        ),
        "allow_resend": st.booleans(),
    },
)
TO_ARG = st.one_of(VALID_ADDRESS, ADDRESSES)
TEMPLATE_ARG = st.one_of(VALID_TEMPLATE, TEMPLATE_ARGS)
PERSONALISATION_ARG = st.one_of(VALID_PERSONALISATION, PERSONALISATION)
OPTIONS_ARG = st.one_of(VALID_OPTIONS, ANY_OPTIONS)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)


def _private_values(to: Any, personalisation: Any) -> list[str]:
    values = [s for s in _strings(personalisation) if s.startswith("pv") and len(s) == 10]
    if isinstance(to, str) and to.strip().startswith("zz") and "@" in to:
        values.append(to.strip())
    return values


def _assert_private(error: DMMailError, private: list[str]) -> None:
    text = f"{error.message} {error!r} {error!s}".lower()
    for value in private:
        assert value.lower() not in text, type(error).__name__


@PROPERTY_SETTINGS
@given(to=TO_ARG, template=TEMPLATE_ARG, personalisation=PERSONALISATION_ARG, options=OPTIONS_ARG)
def test_send_raises_only_typed_errors_and_refusals_never_reach_notify(
    target: Target, to: Any, template: Any, personalisation: Any, options: dict[str, Any]
) -> None:
    private = _private_values(to, personalisation)
    register_secret(private, kind="property input")
    requests_before = target.counter.count
    outbox_before = target.outbox_size()
    try:
        result = target.mailer.send(to, template, personalisation, **options)
    except InvalidInputError as error:
        event(f"refused locally: {type(error).__name__}")
        assert target.counter.count == requests_before, "a refused input reached the sandbox"
        assert target.outbox_size() == outbox_before
        _assert_private(error, private)
    except NotifyError as error:
        event(f"refused by Notify: {type(error).__name__}")
        # Notify may refuse what only it can know (an unknown template id, a placeholder
        # the template needs), never what its schema refuses: that is checked locally.
        assert not isinstance(error, NotifyValidationError), error.message
        assert not isinstance(error, NotifyUnavailableError), error.message
        assert isinstance(error, NotifyBadRequestError), error.message
        assert target.outbox_size() == outbox_before
        _assert_private(error, private)
    else:
        event("sent" if result is not None else "skipped")
        if result is None:
            assert options.get("allow_resend") is False
        else:
            assert isinstance(result, SentEmail)
            assert target.outbox_size() == outbox_before + 1
            assert private == [] or not any(p.lower() in repr(result).lower() for p in private)


# -- the receipts parser and endpoint -------------------------------------------------------------

JSON_SCALARS = st.one_of(
    SURROGATE_TEXT,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
GOOD_RECEIPT = {
    "id": "740e5834-3a29-46b4-9a6f-16142fde533a",
    "reference": "ref",
    "to": "zzreceipt@example.gov.uk",
    "status": "delivered",
    "created_at": "2017-05-14T12:15:30.000000Z",
    "completed_at": "2017-05-14T12:15:30.000000Z",
    "sent_at": None,
    "notification_type": "email",
    "template_id": WELCOME_ID,
    "template_version": 1,
}
RECEIPTS = st.one_of(
    JSON,
    st.builds(
        lambda key, value: {**GOOD_RECEIPT, key: value},
        st.sampled_from(sorted(GOOD_RECEIPT)),
        JSON,
    ),
    st.builds(
        lambda drop: {k: v for k, v in GOOD_RECEIPT.items() if k not in drop},
        st.sets(st.sampled_from(sorted(GOOD_RECEIPT)), max_size=3),
    ),
)


@settings(max_examples=300, deadline=None)
@given(data=RECEIPTS, to=SENTINEL)
def test_receipt_parser_returns_a_receipt_or_invalid_receipt(data: Any, to: str) -> None:
    if isinstance(data, dict) and "to" in data:
        data = {**data, "to": to + "@example.gov.uk"}
    try:
        receipt = parse_delivery_receipt(data, lambda address: "hash")
    except InvalidReceipt as error:
        assert to.lower() not in str(error).lower()
    else:
        assert isinstance(receipt, DeliveryReceipt)
        assert receipt.to_hash == "hash"
        assert to not in repr(receipt)


@PROPERTY_SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=200),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda key, value: json.dumps({**GOOD_RECEIPT, key: value}).encode(),
            st.sampled_from(sorted(GOOD_RECEIPT)),
            st.one_of(JSON, SURROGATE_TEXT),
        ),
    )
)
def test_the_receipts_endpoint_never_fails_on_any_body(target: Target, body: bytes) -> None:
    response = target.app.test_client().post(
        NOTIFY_CALLBACKS_PATH,
        data=body,
        content_type="application/json",
        headers={"Authorization": "Bearer property-token-0123456789"},
    )
    assert response.status_code in (204, 400, 413)


# -- the CLI's KEY=VALUE items ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.one_of(st.text(max_size=12), SENTINEL), max_size=5), secret=SENTINEL)
def test_key_value_items_parse_or_are_a_usage_error_without_the_value(
    items: list[str], secret: str
) -> None:
    items = [*items, f"={secret}", secret]
    context, parameter = click.Context(click.Command("x")), click.Argument(["p"])
    for cut in range(len(items) + 1):
        try:
            parsed = _personalisation(context, parameter, items[:cut])
        except click.BadParameter as error:
            assert secret not in error.format_message()
        else:
            assert all(isinstance(k, str) and k for k in parsed)


# -- Mailer.send_bulk -------------------------------------------------------------------------

RECIPIENT_ITEMS = st.one_of(
    st.tuples(TO_ARG, PERSONALISATION_ARG),
    st.lists(st.one_of(TO_ARG, PERSONALISATION_ARG), min_size=2, max_size=2),
    TO_ARG,
    st.lists(TO_ARG, min_size=3, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=2),
)
RECIPIENTS = st.one_of(
    st.lists(RECIPIENT_ITEMS, max_size=4),
    st.lists(st.tuples(VALID_ADDRESS, VALID_PERSONALISATION), min_size=1, max_size=4),
    st.lists(RECIPIENT_ITEMS, max_size=3).map(tuple),
    st.lists(RECIPIENT_ITEMS, max_size=3).map(iter),
    st.text(max_size=10),
    st.binary(max_size=5),
    st.none(),
    st.integers(),
)
BULK_TEMPLATE = st.booleans().flatmap(
    lambda mostly_valid: VALID_TEMPLATE if mostly_valid else TEMPLATE_ARG
)
BULK_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "rate": st.one_of(
            st.floats(min_value=6000, max_value=1_000_000),
            st.sampled_from([0, -1, 0.5, float("nan"), float("inf"), True, "fast", None]),
        ),
        "burst": st.one_of(
            st.none(), st.integers(min_value=5, max_value=1000), st.sampled_from([0, -3, 2.5, True])
        ),
        "concurrency": st.one_of(
            st.none(), st.integers(min_value=1, max_value=4), st.sampled_from([0, -1, 1.5, "2"])
        ),
        "dry_run": st.booleans(),
    },
)


_NOTIFY_ERROR_NAMES = {
    name
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), NotifyError)
}


@PROPERTY_SETTINGS
@given(
    template=BULK_TEMPLATE,
    recipients=RECIPIENTS,
    options=BULK_OPTIONS,
)
def test_send_bulk_raises_only_typed_errors_and_refused_rows_never_reach_notify(
    target: Target, template: Any, recipients: Any, options: dict[str, Any]
) -> None:
    items = recipients if isinstance(recipients, list | tuple) else []
    private: list[str] = []
    for item in items:
        pair = item if isinstance(item, list | tuple) and len(item) == 2 else (item, None)
        private.extend(_private_values(pair[0], pair[1]))
    register_secret(private, kind="property input")
    options.setdefault("rate", 600_000)
    journal = target.journal_dir / f"{uuid.uuid4()}.sqlite"
    posts_before = target.counter.posts
    outbox_before = target.outbox_size()
    report: BulkReport | None  # BulkAbortedError.report may be None; asserted below
    try:
        report = target.mailer.send_bulk(template, recipients, journal=journal, **options)
    except (InvalidInputError, RecipientsError) as error:
        event(f"refused: {type(error).__name__}")
        assert target.counter.posts == posts_before, "a refused run reached the sandbox"
        assert target.outbox_size() == outbox_before
        _assert_private(error, private)
        return
    except TemplateNotFoundError as error:
        # The dry run previews the template through Notify before anything else: an id the
        # service does not have is refused there, and nothing is sent.
        event("refused by the preview: TemplateNotFoundError")
        assert options.get("dry_run") is True, "only the dry run previews the template first"
        assert target.counter.posts == posts_before
        assert target.outbox_size() == outbox_before
        _assert_private(error, private)
        return
    except BulkAbortedError as error:
        event(f"aborted: {type(error.__cause__).__name__}")
        _assert_private(error, private)
        report = error.report
        assert report is not None
    event("dry run" if report.dry_run else f"ran: {report.sent} sent, {report.failed} failed")
    assert target.outbox_size() == outbox_before + report.sent
    reached_notify = sum(1 for f in report.failures if f.error_class in _NOTIFY_ERROR_NAMES)
    if report.dry_run:
        assert target.counter.posts == posts_before
    elif not report.interrupted:
        # every post is a sent email or one Notify refused: refused rows never got there
        assert target.counter.posts - posts_before <= report.sent + reached_notify + report.in_doubt
    for failure in report.failures:
        assert failure.error_class not in {"NotifyValidationError", "NotifyUnavailableError"}
        text = failure.message.lower()
        assert not any(p.lower() in text for p in private)


@pytest.mark.parametrize("recipients", [None, 42])
def test_send_bulk_refuses_recipients_that_are_not_iterable(
    target: Target, recipients: Any
) -> None:
    posts_before = target.counter.posts
    with pytest.raises(RecipientsError):
        target.mailer.send_bulk(
            "welcome", recipients, journal=target.journal_dir / f"{uuid.uuid4()}.sqlite"
        )
    assert target.counter.posts == posts_before


def test_send_bulk_refuses_an_infinite_rate(target: Target) -> None:
    posts_before = target.counter.posts
    with pytest.raises(InvalidInputError):
        target.mailer.send_bulk(
            "welcome",
            [],
            rate=float("inf"),
            journal=target.journal_dir / f"{uuid.uuid4()}.sqlite",
        )
    assert target.counter.posts == posts_before
