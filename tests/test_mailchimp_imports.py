"""``import flask_dmmail.mailchimp`` does not load the ``mailchimp-marketing`` client library
(32 modules); the first request does. Each check runs in a fresh interpreter, whose
``sys.modules`` says what was loaded; the request goes to the session sandbox over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys

from flask_dmmail.sandbox import Sandbox
from flask_dmmail.sandbox.mailchimp import MailchimpState
from tests.secrets_scan import record_output

# Prints, after the code before it, a line per loaded module of the client library.
_REPORT = """
import sys
print("loaded:", *sorted(m for m in sys.modules if m.split(".")[0] == "mailchimp_marketing"))
"""


def _loaded(code: str, env: dict[str, str] | None = None) -> list[list[str]]:
    """The client library's modules loaded at each report in ``code`` (one list per report)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    record_output("import check", done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("loaded:")]


def test_importing_the_package_and_its_public_names_loads_no_client_library() -> None:
    code = (
        "import flask_dmmail.mailchimp\n"
        "from flask_dmmail.mailchimp import *\n"
        "from flask_dmmail.mailchimp import map_error, MEMBER_STATUSES\n"
        "import flask_dmmail.mailchimp.audiences, flask_dmmail.mailchimp.transport\n" + _REPORT
    )
    assert _loaded(code) == [[]]


def test_the_client_library_loads_at_the_first_request_and_works(
    notify_sandbox: Sandbox, mc_state: MailchimpState
) -> None:
    code = (
        "import os\n"
        "from flask_dmmail.mailchimp import Audiences\n"
        "mc = Audiences(api_key=os.environ['MC_KEY'], base_url=os.environ['MC_URL'])\n"
        + _REPORT
        + "assert mc.ping() is True\n"
        + _REPORT
    )
    env = {"MC_KEY": mc_state.api_key, "MC_URL": f"{notify_sandbox.url}/3.0"}
    before, after = _loaded(code, env)
    assert before == []
    assert "mailchimp_marketing" in after and "mailchimp_marketing.api_client" in after
