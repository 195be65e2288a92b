"""One Notify budget shared through Redis (``DM_MAIL_REDIS_URL``): the bucket, the reserve,
the drain on a 429, the send and bulk paths that take from it, and the config keys.

Every test talks to a real ``redis-server`` (tests/redis_support.py) and sends through the
real Notify client to the sandbox. A test that must know how full the bucket is sets it in
Redis first (:func:`set_bucket`); ``frozen`` puts its refill time an hour ahead, so that no
token comes back while the test runs, whatever the machine's speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_dmmail import DMMail, Mailer
from flask_dmmail.budget import (
    BULK,
    TRANSACTIONAL,
    BudgetShape,
    SharedBudget,
    SharedRateLimiter,
)
from flask_dmmail.config import KEYS
from flask_dmmail.errors import (
    BulkInterruptedError,
    ConfigurationError,
    InvalidOptionError,
    RateLimitError,
)
from flask_dmmail.sandbox import Sandbox
from tests.secrets_scan import register_secret

KEY = "my_test_key-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0"


def set_bucket(budget: SharedBudget, tokens: float, *, frozen: bool = False) -> None:
    """Put ``tokens`` in ``budget``'s bucket in Redis; ``frozen``: no refill for an hour."""
    client = budget.client
    seconds, micros = client.time()
    now = seconds + micros / 1_000_000
    client.hset(budget.key, mapping={"tokens": tokens, "ts": now + (3600 if frozen else 0)})


def budget_on(
    url: str,
    *,
    service: str = "service-a",
    key_type: str = "live",
    rate: float = 60,
    share: float = 0.5,
) -> SharedBudget:
    return SharedBudget.from_url(
        url,
        service_id=service,
        key_type=key_type,
        rate_per_minute=rate,
        bulk_share=share,
        required=True,
    )


def budget_of(app: Flask) -> SharedBudget:
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer) and mailer.budget is not None
    return mailer.budget


def reset(mailer: Mailer, n: int) -> Any:
    return mailer.send(f"user{n}@example.gov.uk", "reset_password", {"url": f"https://x/{n}"})


# -- the bucket ----------------------------------------------------------------------------------


def test_the_shared_bucket_is_notifys_less_its_kept_token_and_a_second_of_refill() -> None:
    # Less the token Notify keeps back (it refuses below one) and a second of refill.
    shape = BudgetShape.for_rate(3000, 0.8)
    assert (shape.capacity, shape.per_second) == (949, 50)
    assert shape.reserve == pytest.approx(189.8)
    assert (BudgetShape.for_rate(600, 0.8).capacity, BudgetShape.for_rate(600, 0.8).per_second) == (
        190,
        10,
    )
    assert BudgetShape.for_rate(3000, 1.0).reserve == 0
    assert shape.floor(TRANSACTIONAL) == 0 and shape.floor(BULK) == shape.reserve
    with pytest.raises(InvalidOptionError):
        shape.floor("urgent")


def test_bulk_takes_only_above_the_reserve_and_a_send_may_take_the_rest(
    fresh_redis_url: str,
) -> None:
    budget = budget_on(fresh_redis_url, rate=60, share=0.5)  # 20 tokens, 10 kept for sends
    set_bucket(budget, 20, frozen=True)
    assert [budget.take(BULK, max_wait=0) for _ in range(11)] == [True] * 10 + [False]
    assert budget.tokens() == 10
    assert [budget.take(TRANSACTIONAL, max_wait=0) for _ in range(11)] == [True] * 10 + [False]
    assert budget.tokens() == 0
    budget.close()


def test_a_new_bucket_starts_empty_and_a_take_waits_for_its_refill(fresh_redis_url: str) -> None:
    budget = budget_on(fresh_redis_url, rate=600)  # one token every 0.1 s
    assert budget.tokens() == 0
    assert budget.take(TRANSACTIONAL) is True
    assert budget.waits[TRANSACTIONAL][-1] > 0  # no token was there: it waited for one
    budget.close()


def test_each_service_and_key_type_has_its_own_bucket(fresh_redis_url: str) -> None:
    live = budget_on(fresh_redis_url, service="service-a", key_type="live")
    same = budget_on(fresh_redis_url, service="service-a", key_type="live")
    team = budget_on(fresh_redis_url, service="service-a", key_type="team")
    other = budget_on(fresh_redis_url, service="service-b", key_type="live")
    set_bucket(live, 20, frozen=True)
    assert same.take(max_wait=0) and live.tokens() == 19  # another process, the same bucket
    assert not team.take(max_wait=0) and not other.take(max_wait=0)  # theirs are empty
    for budget in (live, same, team, other):
        budget.close()


def test_a_drain_empties_the_bucket_for_every_process(fresh_redis_url: str) -> None:
    here, there = budget_on(fresh_redis_url), budget_on(fresh_redis_url)
    set_bucket(here, 20, frozen=True)
    there.drain()
    assert here.tokens() == 0 and not here.take(max_wait=0)
    here.close()
    there.close()


def test_a_stop_ends_a_wait_without_a_token(fresh_redis_url: str) -> None:
    budget = budget_on(fresh_redis_url)
    set_bucket(budget, 0, frozen=True)
    stop = threading.Event()
    stop.set()
    assert budget.take(BULK, stop=stop) is False
    assert budget.tokens() == 0
    budget.close()


def test_a_bulk_limiter_takes_from_the_shared_bucket_and_a_429_drains_it(
    fresh_redis_url: str,
) -> None:
    budget = budget_on(fresh_redis_url, rate=60, share=0.5)
    set_bucket(budget, 20, frozen=True)
    limiter = SharedRateLimiter(budget, 6000)
    stop = threading.Event()
    assert all(limiter.acquire(stop) for _ in range(10))
    assert budget.tokens() == 10
    limiter.penalise()
    assert budget.tokens() == 0 and limiter.rate_limited == 1
    budget.close()


# -- the send path -------------------------------------------------------------------------------


def test_without_a_redis_url_there_is_no_shared_budget(mailer: Mailer, sandbox: Sandbox) -> None:
    assert mailer.budget is None
    reset(mailer, 1)
    assert len(sandbox.state.outbox()) == 1


def test_a_send_takes_one_token_of_its_service_and_key_type(
    make_app: Callable[..., Flask], fresh_redis_url: str, sandbox: Sandbox
) -> None:
    app = make_app(DM_MAIL_REDIS_URL=fresh_redis_url, DM_NOTIFY_KEY_TYPE="test")
    budget = budget_of(app)
    assert budget.key == f"dmmail:notify-budget:{sandbox.state.service_id}:test"
    set_bucket(budget, 20, frozen=True)
    reset(app.extensions["dmmail"], 1)
    assert budget.tokens() == 19


def test_sends_wait_for_tokens_rather_than_meet_a_429(
    make_app: Callable[..., Flask], fresh_redis_url: str, sandbox: Sandbox
) -> None:
    # Notify's bucket for 60 a minute: 21 tokens (20 usable), one a second; the shared one
    # holds 19.
    sandbox.state.set_limits(rate_limit=60)
    app = make_app(DM_MAIL_REDIS_URL=fresh_redis_url, DM_NOTIFY_RATE_LIMIT=60, DM_NOTIFY_RETRIES=0)
    budget = budget_of(app)
    set_bucket(budget, 19)
    for n in range(25):
        reset(app.extensions["dmmail"], n)
    assert sandbox.state.notify.limits.rate_limited == {}
    assert len(sandbox.state.outbox()) == 25
    assert max(budget.waits[TRANSACTIONAL]) > 0


def test_a_send_that_finds_no_token_in_time_posts_anyway(
    make_app: Callable[..., Flask],
    fresh_redis_url: str,
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(DM_MAIL_REDIS_URL=fresh_redis_url, DM_NOTIFY_TIMEOUT=0.5)
    set_bucket(budget_of(app), 0, frozen=True)
    reset(app.extensions["dmmail"], 1)  # Notify decides: its bucket is full
    assert len(sandbox.state.outbox()) == 1
    assert any("posting anyway" in r.getMessage() for r in caplog.records)


def test_a_429_drains_the_shared_bucket(
    make_app: Callable[..., Flask], fresh_redis_url: str, sandbox: Sandbox
) -> None:
    # 3 tokens, one a minute: 2 sends go through (Notify refuses below one token)
    sandbox.state.set_limits(rate_limit=1, burst=3)
    plain = make_app().extensions["dmmail"]  # another client of the service, without Redis
    reset(plain, 1)
    reset(plain, 2)
    app = make_app(DM_MAIL_REDIS_URL=fresh_redis_url, DM_NOTIFY_RETRIES=0)
    budget = budget_of(app)
    set_bucket(budget, 20, frozen=True)
    with pytest.raises(RateLimitError):
        reset(app.extensions["dmmail"], 3)
    assert budget.tokens() == 0  # every process of the service now waits for a refill


def test_a_bulk_run_leaves_the_reserve_to_the_apps_own_sends(
    make_app: Callable[..., Flask],
    fresh_redis_url: str,
    sandbox: Sandbox,
    tmp_path: Any,
) -> None:
    app = make_app(
        DM_MAIL_REDIS_URL=fresh_redis_url, DM_NOTIFY_RATE_LIMIT=60, DM_NOTIFY_BULK_SHARE=0.5
    )
    mailer = app.extensions["dmmail"]
    budget = budget_of(app)
    set_bucket(budget, 20, frozen=True)  # 10 for bulk, 10 kept for the app's own sends
    recipients = [(f"bulk{n}@example.gov.uk", {"url": f"https://x/{n}"}) for n in range(15)]
    stop = threading.Event()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            mailer.send_bulk("reset_password", recipients, journal=tmp_path / "j.db", stop=stop)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(600):
            if len(sandbox.state.outbox()) >= 10 or not thread.is_alive():
                break
            threading.Event().wait(0.1)
        threading.Event().wait(0.5)  # the senders ask for more; none comes
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(outbox := sandbox.state.outbox()) == 10, len(outbox)
    assert len(outcome) == 1 and isinstance(outcome[0], BulkInterruptedError)
    report = outcome[0].report
    assert report is not None and (report.sent, report.unsent) == (10, 5)
    assert budget.tokens() == 10
    for n in range(10):  # the app's own sends find the reserve
        reset(mailer, n)
    assert budget.tokens() == 0
    assert sandbox.state.notify.limits.rate_limited == {}


# -- config --------------------------------------------------------------------------------------


@pytest.fixture
def _no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)


def configured(**config: Any) -> Mailer:
    app = Flask("budget_config")
    app.config.update(
        {"SECRET_KEY": "s", "DM_ENVIRONMENT": "production", "DM_NOTIFY_KEY": KEY, **config}
    )
    DMMail(app)
    mailer = app.extensions["dmmail"]
    assert isinstance(mailer, Mailer)
    mailer.close()
    return mailer


@pytest.mark.usefixtures("_no_keys_in_environment")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DM_MAIL_REDIS_URL", "localhost:6379"),
        ("DM_MAIL_REDIS_URL", "http://:hunter2-redis-password@localhost/0"),
        ("DM_MAIL_REDIS_URL", 6379),
        ("DM_MAIL_REDIS_REQUIRED", "sometimes"),
        ("DM_NOTIFY_RATE_LIMIT", 0),
        ("DM_NOTIFY_BULK_SHARE", 0),
        ("DM_NOTIFY_BULK_SHARE", 1.5),
        ("DM_NOTIFY_BULK_SHARE", "most"),
        ("DM_NOTIFY_BULK_SHARE", True),
        ("DM_NOTIFY_KEY_TYPE", "normal"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(key: str, value: object) -> None:
    register_secret("hunter2-redis-password")
    with pytest.raises(ConfigurationError) as raised:
        configured(**{key: value})
    assert raised.value.key == key
    assert "hunter2" not in raised.value.message


@pytest.mark.usefixtures("_no_keys_in_environment")
def test_the_defaults_of_the_shared_budget_keys() -> None:
    settings = configured().settings
    assert settings.redis_url is None and configured().budget is None
    assert (settings.rate_limit, settings.bulk_share, settings.notify_key_type) == (
        3000,
        0.8,
        "live",
    )
    assert settings.redis_required is True  # production
    assert configured(DM_ENVIRONMENT="staging").settings.redis_required is False
    assert configured(DM_MAIL_REDIS_REQUIRED=False).settings.redis_required is False


@pytest.mark.usefixtures("_no_keys_in_environment")
def test_the_bulk_rate_follows_the_limit_and_the_shared_budget() -> None:
    url = "redis://:hunter2-redis-password@127.0.0.1:1/0"
    register_secret("hunter2-redis-password")
    assert configured().settings.bulk_rate == 2700
    assert configured(DM_NOTIFY_RATE_LIMIT=600).settings.bulk_rate == 540
    shared = configured(DM_NOTIFY_RATE_LIMIT=600, DM_MAIL_REDIS_URL=url)
    assert shared.settings.bulk_rate == 600  # the reserve leaves room for the app's sends
    assert configured(DM_MAIL_REDIS_URL=url, DM_NOTIFY_BULK_RATE=100).settings.bulk_rate == 100
    assert "hunter2" not in repr(shared.settings) + repr(shared.budget)
