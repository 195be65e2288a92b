"""The pytest plugin as an app's own suite uses it: a ``conftest.py`` with pytest-flask's ``app``
fixture, and tests that use ``client``, ``live_server``, ``dmmail_outbox``, ``notify_sandbox``,
``mailchimp_sandbox`` and ``dmmail_faults``.

Each test here runs such a suite in a pytest subprocess (pytester), so the plugin is loaded
through its entry point exactly as in a user's project, and reports its outcome.
"""

from __future__ import annotations

import os

import pytest

APP = """
import pytest
from flask import Flask, request

from flask_dmmail import DMMail
from flask_dmmail.errors import DMMailError

WELCOME = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"
SEED = {
    "templates": [
        {"id": WELCOME, "name": "Welcome", "subject": "Welcome, ((name))", "body": "Hi ((name))"}
    ]
}
dmmail = DMMail()


def create_app(**config):
    app = Flask("user_app")
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        DM_NOTIFY_TEMPLATES={"welcome": WELCOME},
        DM_NOTIFY_SANDBOX_TEMPLATES=SEED,
        DM_NOTIFY_RETRY_BACKOFF=0.001,
        DM_MAILCHIMP_AUDIENCES={"news": "a1b2c3d4e5"},
        DM_MAILCHIMP_RETRY_BACKOFF=0.001,
    )
    app.config.update(config)
    dmmail.init_app(app)

    @app.post("/welcome")
    def welcome():
        try:
            sent = dmmail.send(request.form["email"], "welcome", {"name": request.form["name"]})
        except DMMailError as error:
            return type(error).__name__, 503
        return sent.id

    @app.post("/subscribe")
    def subscribe():
        try:
            dmmail.mailchimp.subscribe("news", request.form["email"])
        except DMMailError as error:
            return type(error).__name__, 503
        return "ok"

    return app
"""

CONFTEST = """
import pytest

from user_app import create_app


@pytest.fixture
def app():
    app = create_app()
    yield app
    app.extensions["dmmail"].close()
"""

TESTS = """
import requests

from flask_dmmail import DMMail
from flask_dmmail.testing import DMMailOutbox, MailchimpSandbox, SendFaults


def test_the_fixtures_are_the_apps(app, client, dmmail_outbox, notify_sandbox):
    assert isinstance(dmmail_outbox, DMMailOutbox)
    assert notify_sandbox is DMMail.mailer(app).sandbox
    response = client.post("/welcome", data={"email": "ada@example.gov.uk", "name": "Ada"})
    assert response.status_code == 200, response.text
    [email] = dmmail_outbox
    assert (email.id, email.subject) == (response.text, "Welcome, Ada")
    assert email.to == "ada@example.gov.uk"
    assert [n.id for n in notify_sandbox.state.outbox()] == [email.id]
    assert dmmail_outbox == [email]


def test_each_test_starts_empty(app, dmmail_outbox, notify_sandbox, mailchimp_sandbox):
    assert dmmail_outbox == [] and len(dmmail_outbox) == 0
    assert notify_sandbox.state.outbox() == []
    assert mailchimp_sandbox.state.member_count("a1b2c3d4e5") == 0


def test_what_a_live_server_sent_is_in_the_outbox(app, live_server, dmmail_outbox, notify_sandbox):
    form = {"email": "grace@example.gov.uk", "name": "Grace"}
    response = requests.post(live_server.url("/welcome"), data=form, timeout=60)
    assert response.status_code == 200, response.text
    [email] = dmmail_outbox.wait_for(1)
    assert (email.id, email.subject) == (response.text, "Welcome, Grace")
    assert email.to == email.sent_to == "grace@example.gov.uk" and not email.redirected
    assert [n.id for n in notify_sandbox.state.outbox()] == [email.id]
    # The live server's /_dmmail/ pages send the browser to the sandbox that has the email.
    page = requests.get(live_server.url("/_dmmail/"), timeout=60)
    assert [r.status_code for r in page.history] == [307]
    assert page.url == notify_sandbox.url + "/"
    assert "Welcome, Grace" in page.text
    one = requests.get(live_server.url(f"/_dmmail/email/{email.id}"), timeout=60)
    assert one.url == f"{notify_sandbox.url}/email/{email.id}" and "Hi Grace" in one.text


def test_the_next_sends_fail(app, client, dmmail_faults, dmmail_outbox):
    assert isinstance(dmmail_faults, SendFaults)
    dmmail_faults.fail_next_sends(4)  # the first attempt and its 3 retries
    response = client.post("/welcome", data={"email": "ada@example.gov.uk", "name": "Ada"})
    assert (response.status_code, response.text) == (503, "NotifyUnavailableError")
    assert dmmail_outbox == [] and dmmail_faults.pending() == []
    dmmail_faults.fail_next_sends(1, "rate_limit")  # one 429, then the retry goes through
    response = client.post("/welcome", data={"email": "ada@example.gov.uk", "name": "Ada"})
    assert response.status_code == 200, response.text
    assert len(dmmail_outbox) == 1
    dmmail_faults.fail_next_sends(4, "rate_limit")
    response = client.post("/welcome", data={"email": "bob@example.gov.uk", "name": "Bob"})
    assert (response.status_code, response.text) == (503, "RateLimitError")
    dmmail_faults.fail_next_sends(3)
    assert [f["count"] for f in dmmail_faults.pending()] == [3]


def test_no_failure_is_left_over(app, client, dmmail_faults):
    assert dmmail_faults.pending() == []
    response = client.post("/welcome", data={"email": "ada@example.gov.uk", "name": "Ada"})
    assert response.status_code == 200


def test_the_mailchimp_sandbox_is_the_apps(app, client, mailchimp_sandbox, dmmail_faults):
    assert isinstance(mailchimp_sandbox, MailchimpSandbox)
    assert mailchimp_sandbox.url == DMMail.mailer(app).sandbox.url + "/3.0"
    assert [a["id"] for a in mailchimp_sandbox.state.lists()] == ["a1b2c3d4e5"]
    # example.gov.uk looks fake to Mailchimp (and its sandbox): a real-looking domain
    ada = {"email": "ada@digitalmarketplace.service.gov.uk"}
    assert client.post("/subscribe", data=ada).text == "ok"
    assert mailchimp_sandbox.state.member_count("a1b2c3d4e5") == 1
    dmmail_faults.fail_next_mailchimp_calls(4)
    response = client.post("/subscribe", data={"email": "bob@digitalmarketplace.service.gov.uk"})
    assert (response.status_code, response.text) == (503, "MailchimpUnavailableError")
    assert mailchimp_sandbox.state.member_count("a1b2c3d4e5") == 1
"""

TIMEOUT_TESTS = """
import pytest

from user_app import create_app


@pytest.fixture
def app():
    app = create_app(DM_NOTIFY_TIMEOUT=0.5, DM_NOTIFY_RETRIES=1)
    yield app
    app.extensions["dmmail"].close()


def test_sends_that_time_out(app, client, dmmail_faults, dmmail_outbox):
    dmmail_faults.fail_next_sends(1, "timeout")  # held until the client gives up; the retry works
    response = client.post("/welcome", data={"email": "ada@example.gov.uk", "name": "Ada"})
    assert response.status_code == 200, response.text
    assert len(dmmail_outbox) == 1
    dmmail_faults.fail_next_sends(2, "timeout")
    response = client.post("/welcome", data={"email": "bob@example.gov.uk", "name": "Bob"})
    assert (response.status_code, response.text) == (503, "NotifyUnavailableError")
    assert len(dmmail_outbox) == 1
"""

NO_APP_TESTS = """
from flask import Flask

from flask_dmmail import DMMail

SEEN = []
TEMPLATE = "1d2c3b4a-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_first(notify_sandbox, dmmail_outbox):
    SEEN.append(notify_sandbox)
    notify_sandbox.state.add_template(name="T", subject="S", body="B", id=TEMPLATE)
    app = Flask("no_fixture")
    app.config.update(
        SECRET_KEY="s", DM_ENVIRONMENT="production", DM_NOTIFY_KEY=notify_sandbox.keys.test,
        DM_NOTIFY_BASE_URL=notify_sandbox.url,
    )
    DMMail(app)
    sent = app.extensions["dmmail"].send("a@example.gov.uk", TEMPLATE)
    assert [e.id for e in dmmail_outbox] == [sent.id]


def test_second(notify_sandbox, dmmail_outbox):
    assert notify_sandbox is SEEN[0]  # one for the session
    assert notify_sandbox.state.outbox() == [] and dmmail_outbox == []
"""

SUITE_CONFTEST = '''
import pytest
from flask import Flask, request

from flask_dmmail import DMMail

WELCOME = "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01"


@pytest.fixture
def app(notify_sandbox):
    """An app that talks to the plugin's sandbox as it would to Notify."""
    notify_sandbox.state.add_template(name="W", subject="Hello ((name))", body="B", id=WELCOME)
    app = Flask("against_the_sandbox")
    app.config.update(
        SECRET_KEY="s",
        DM_ENVIRONMENT="production",
        DM_NOTIFY_KEY=notify_sandbox.keys.test,
        DM_NOTIFY_BASE_URL=notify_sandbox.url,
        DM_NOTIFY_TEMPLATES={"welcome": WELCOME},
    )
    DMMail(app)

    @app.post("/welcome")
    def welcome():
        return DMMail.mailer().send(request.form["email"], "welcome", {"name": "X"}).id

    return app
'''

SUITE_TESTS = """
import requests


def test_an_app_configured_against_notify_sandbox(
    app, client, live_server, dmmail_outbox, notify_sandbox
):
    assert app.extensions["dmmail"].notify.base_url == notify_sandbox.url
    here = client.post("/welcome", data={"email": "ada@example.gov.uk"}).text
    form = {"email": "bob@example.gov.uk"}
    there = requests.post(live_server.url("/welcome"), data=form, timeout=60).text
    assert [e.id for e in dmmail_outbox.wait_for(2)] == [here, there]
    assert dmmail_outbox[0].to == "ada@example.gov.uk"
"""


@pytest.fixture
def user_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for key in list(os.environ):
        if key.startswith(("DM_", "FLASK_")):
            monkeypatch.delenv(key)
    pytester.makepyfile(user_app=APP)
    pytester.makeini("[pytest]\nlive_server_scope = function\n")
    return pytester


def test_with_an_app_fixture_the_fixtures_are_that_apps(user_suite: pytest.Pytester) -> None:
    user_suite.makeconftest(CONFTEST)
    user_suite.makepyfile(test_app=TESTS, test_timeout=TIMEOUT_TESTS)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=7)


def test_without_an_app_fixture_the_session_sandbox_serves(user_suite: pytest.Pytester) -> None:
    user_suite.makepyfile(test_no_app=NO_APP_TESTS)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=2)


def test_an_app_fixture_configured_against_notify_sandbox(user_suite: pytest.Pytester) -> None:
    user_suite.makeconftest(SUITE_CONFTEST)
    user_suite.makepyfile(test_suite=SUITE_TESTS)
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=1)
