"""``python -m flask_dmmail.sandbox --port 6011 [--host 127.0.0.1] [--seed FILE]``.

Prints ``base url: URL``, ``test key: KEY``, ``team key: KEY`` and ``live key: KEY`` (Notify),
then ``mailchimp key: KEY`` (Mailchimp, under ``URL/3.0``), each on its own line, then serves
until Ctrl-C. The keys open only this sandbox.

``--callback-url URL`` POSTs a delivery receipt there whenever an email reaches a final
status, with the bearer token from the ``DM_NOTIFY_CALLBACK_TOKEN`` environment variable
(never a command-line argument, where ``ps`` would show it).

The control endpoints (``/_sandbox/``) and the outbox pages answer only to loopback host
names. With ``--host 0.0.0.0`` (or another interface) they also answer to that address, the
machine's name and the address a request arrived on; ``--allow-host NAME`` (repeatable) adds
names, say the one a container network gives the sandbox.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .server import Sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flask_dmmail.sandbox",
        description="A local GOV.UK Notify API v2 (email) sandbox.",
    )
    parser.add_argument("--port", type=int, default=6011, help="port to listen on (0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the control endpoints and outbox pages answer to "
        "(repeatable; loopback names always work)",
    )
    parser.add_argument("--seed", metavar="FILE", help="JSON or YAML seed file")
    parser.add_argument(
        "--service-id",
        metavar="UUID",
        help="fixed service id: the same keys on every start",
    )
    parser.add_argument("--restricted", action="store_true", help="the service is in trial mode")
    parser.add_argument(
        "--delivery-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time from created to delivered (default 0)",
    )
    parser.add_argument(
        "--rate-limit", type=int, default=3000, help="requests per 60 s per key type"
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        help="token bucket size, at least 2 (default Notify's: min(rate/3 + 1, 1000)); "
        "as on Notify, a full bucket lets one request fewer through than it holds",
    )
    parser.add_argument("--daily-limit", type=int, default=250_000, help="emails per day")
    parser.add_argument(
        "--auto-templates",
        action="store_true",
        help="an unknown template id creates a stand-in template instead of failing",
    )
    parser.add_argument(
        "--callback-url",
        metavar="URL",
        help="POST delivery receipts here (token from $DM_NOTIFY_CALLBACK_TOKEN)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until interrupted."""
    args = _parser().parse_args(argv)
    callback_token = os.environ.get("DM_NOTIFY_CALLBACK_TOKEN") if args.callback_url else None
    if args.callback_url and not callback_token:
        print("error: --callback-url needs DM_NOTIFY_CALLBACK_TOKEN set", file=sys.stderr)
        return 2
    try:
        sandbox = Sandbox.start(
            host=args.host,
            port=args.port,
            seed=args.seed,
            allowed_hosts=args.allow_host,
            delivery_delay=args.delivery_delay,
            rate_limit=args.rate_limit,
            burst=args.burst,
            daily_limit=args.daily_limit,
            restricted=args.restricted,
            auto_templates=args.auto_templates,
            service_id=args.service_id,
            callback_url=args.callback_url,
            callback_token=callback_token,
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Before the keys are printed: whoever reads them may stop the sandbox at once.
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"base url: {sandbox.url}")
    print(f"test key: {sandbox.keys.test}")
    print(f"team key: {sandbox.keys.team}")
    print(f"live key: {sandbox.keys.live}")
    print(f"mailchimp key: {sandbox.state.mailchimp.api_key}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
