"""``flask dmmail ...``: the commands scripts run on Jenkins.

The group is registered on every app by ``init_app``; commands act on that app's Mailer.
Each concern has its own module (``notify``, ``bulk``, ``mailchimp``), imported only when
one of its commands runs or ``flask dmmail --help`` lists them, so an app that never runs a
command loads none of them (nor the bulk or Mailchimp code they use). This package only
builds the group. API keys come from the app's config or the environment, never from a
command-line argument (where ``ps`` would show them).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click
from flask.cli import AppGroup

__all__ = ["LazyGroup", "dmmail_cli"]

#: Each subcommand of ``flask dmmail`` and the module of this package that defines it; the
#: module's ``register(group)`` adds all of its commands.
SUBCOMMANDS: Mapping[str, str] = {
    "send": "notify",
    "preview": "notify",
    "status": "notify",
    "outbox": "notify",
    "sandbox": "notify",
    "bulk-send": "bulk",
    "mailchimp": "mailchimp",
    "templates": "templates",
}


class LazyGroup(AppGroup):
    """A Flask :class:`~flask.cli.AppGroup` whose subcommands live in other modules, each
    imported the first time one of its commands is looked up (to run it, or for ``--help``).

    :param lazy: each lazy command's name and the module that defines it, a module of this
        package (``"notify"``) or a full dotted name; the module's ``register(group)``
        function adds its commands to the group.
    :param args: passed to :class:`~flask.cli.AppGroup` (the group's name first).
    :param kwargs: passed to :class:`~flask.cli.AppGroup` (``help=`` and the like).
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.load(self.lazy[cmd_name])
        return super().get_command(ctx, cmd_name)

    def load(self, module_name: str) -> None:
        """Import ``module_name`` and let its ``register(group)`` add its commands."""
        if "." not in module_name:
            module_name = f"{__name__}.{module_name}"
        importlib.import_module(module_name).register(self)


dmmail_cli = LazyGroup(
    "dmmail",
    lazy=SUBCOMMANDS,
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
    click.echo(f"reply-to names: {', '.join(sorted(settings.reply_to_ids)) or '(none)'}")
    click.echo(f"redirected domains: {', '.join(sorted(settings.redirects)) or '(none)'}")
