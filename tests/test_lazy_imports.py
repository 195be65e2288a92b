"""Only what is used is imported: ``import flask_dmmail`` and ``DMMail(app)`` load no CLI
subcommand module, no bulk module and no ``mailchimp_marketing`` on an app without Mailchimp,
and ``flask dmmail`` still lists and runs every command.

Imports are observed in a fresh interpreter (``python -c``), as an app's process starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest
from flask import Flask

from flask_dmmail.cli import SUBCOMMANDS, LazyGroup, dmmail_cli

#: An app that sends through Notify (a made-up key, never used), without Mailchimp.
NOTIFY_APP = """
import uuid
from flask import Flask
from flask_dmmail import DMMail

app = Flask("lazy")
app.config.update(
    SECRET_KEY="lazy-imports",
    DM_NOTIFY_KEY=f"lazy-{uuid.uuid4()}-{uuid.uuid4()}",
    DM_NOTIFY_BASE_URL="http://127.0.0.1:9",
    DM_MAIL_SANDBOX=False,
    DM_ENVIRONMENT="production",
)
DMMail(app)
"""

#: The same app in sandbox mode, as in development and tests.
SANDBOX_APP = """
from flask import Flask
from flask_dmmail import DMMail

app = Flask("lazy")
app.testing = True
app.config.update(DM_MAIL_SANDBOX=True, DM_ENVIRONMENT="development")
DMMail(app)
app.extensions["dmmail"].sandbox.stop()
"""

UNWANTED = ("mailchimp_marketing", "flask_dmmail.bulk")


def imported_by(code: str) -> list[str]:
    """The modules in sys.modules after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def unwanted(modules: list[str]) -> list[str]:
    """The modules an app without Mailchimp that runs no command should not have loaded."""
    return [
        m
        for m in modules
        if m.startswith(UNWANTED) or (m.startswith("flask_dmmail.cli.") and m != "flask_dmmail.cli")
    ]


def test_import_loads_no_cli_bulk_or_mailchimp_module() -> None:
    assert unwanted(imported_by("import flask_dmmail")) == []


def test_init_app_without_mailchimp_loads_no_cli_bulk_or_mailchimp_module() -> None:
    modules = imported_by(NOTIFY_APP)
    assert "flask_dmmail.cli" in modules  # the group is registered ...
    assert unwanted(modules) == []  # ... but none of its subcommand modules is loaded


def test_init_app_in_sandbox_mode_loads_no_cli_bulk_or_mailchimp_module() -> None:
    assert unwanted(imported_by(SANDBOX_APP)) == []


def test_running_one_command_loads_only_its_module() -> None:
    code = NOTIFY_APP + textwrap.dedent(
        """
        result = app.test_cli_runner().invoke(args=["dmmail", "status", "--help"])
        assert result.exit_code == 0, result.output
        """
    )
    modules = imported_by(code)
    assert "flask_dmmail.cli.notify" in modules
    assert "flask_dmmail.cli.bulk" not in modules
    assert "flask_dmmail.cli.mailchimp" not in modules


def test_help_lists_every_command_with_its_short_help(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["dmmail", "--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    assert names == sorted([*SUBCOMMANDS, "config"])
    ctx = click.Context(dmmail_cli)
    for name in names:
        command = dmmail_cli.get_command(ctx, name)
        assert command is not None
        short = command.get_short_help_str(limit=45).rstrip(".")[:40]
        assert any(
            line.split(None, 1)[1].startswith(short)
            for line in listed
            if line.split()[:1] == [name]
        )


@pytest.mark.parametrize("module", sorted(set(SUBCOMMANDS.values())))
def test_each_module_registers_exactly_the_commands_the_table_names(module: str) -> None:
    group = LazyGroup("probe", lazy={})
    group.load(module)
    assert sorted(group.commands) == sorted(n for n, m in SUBCOMMANDS.items() if m == module)


def test_an_unknown_command_is_still_a_usage_error(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["dmmail", "no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output
