"""``flask dmmail ...``: the commands scripts run on Jenkins.

The group is registered on every app by ``init_app``; commands act on that app's Mailer.
Each concern has its own module (``notify``, ``bulk``, ``mailchimp``); this package only
builds the group from them. API keys come from the app's config or the environment, never
from a command-line argument (where ``ps`` would show them).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

__all__ = ["dmmail_cli"]

dmmail_cli = AppGroup(
    "dmmail",
    help="Send email through GOV.UK Notify and manage Mailchimp audiences with this app's "
    "flask-dmmail configuration. API keys come from the app's config or the environment, "
    "never from the command line.",
)


@dmmail_cli.command("config")
def show_config() -> None:
    """Show the mode, base URL and template names this app would send with (no secrets)."""
    from ..extension import DMMail

    mailer = DMMail.mailer()
    settings = mailer.settings
    click.echo(f"mode: {'sandbox' if mailer.sandbox is not None else 'notify'}")
    click.echo(f"notify base url: {mailer.notify.base_url}")
    click.echo(f"templates: {', '.join(sorted(settings.templates)) or '(none)'}")
    click.echo(f"redirected domains: {', '.join(sorted(settings.redirects)) or '(none)'}")


def _register_subcommands() -> None:
    from . import bulk, mailchimp, notify

    for module in (notify, bulk, mailchimp):
        module.register(dmmail_cli)


_register_subcommands()
