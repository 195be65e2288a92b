"""Who may use the sandbox's control endpoints and outbox pages.

The control endpoints (``/_sandbox/``) and the outbox pages hold every email sent (reset
links included) and the sandbox's keys, and change its state. A web page the developer
happens to visit must not reach them:

- **Cross-site requests.** A page can send a "simple" POST (``text/plain``, a form) to
  ``http://127.0.0.1:6011/_sandbox/reset`` without asking. Requests that change state must
  carry ``Content-Type: application/json``, which a page can only send cross-site after a
  CORS preflight the sandbox never grants (:func:`json_required`).
- **DNS rebinding.** A page whose own name is made to resolve to 127.0.0.1 can read
  same-origin answers. Its requests carry its own name in ``Host``, so the control endpoints
  and the outbox pages answer only to loopback names (:func:`host_refusal`): ``localhost``,
  ``*.localhost``, loopback addresses, and the names a sandbox bound to another interface on
  purpose was given (:func:`sandbox_host_names`). Notify's ``/v2`` and Mailchimp's ``/3.0``
  APIs are not checked: they need a key, and CI reaches sandboxes by service name.
- **Remote clients of an app's embedded outbox.** Outside debug and testing (an app that turned
  the sandbox on for, say, staging), ``/_dmmail/`` is served only to the machine itself
  (:func:`remote_client`); anyone else gets a 404.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from flask import current_app, request

__all__ = [
    "HOSTS_EXTENSION",
    "HOST_REFUSED",
    "JSON_REQUIRED",
    "LOCAL_ADDR_KEY",
    "host_refusal",
    "is_loopback_address",
    "json_required",
    "remote_client",
    "sandbox_host_names",
]

#: ``app.extensions`` key of a sandbox app's extra accepted host names (a frozenset).
HOSTS_EXTENSION = "dmmail_sandbox_hosts"
#: WSGI environ key where the sandbox's server puts the address a request arrived on.
LOCAL_ADDR_KEY = "dmmail.local_addr"

_FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Host")

HOST_REFUSED = (
    "This sandbox page answers only to a loopback host name (localhost, 127.0.0.1 or [::1]), "
    "so that a web page cannot reach it by rebinding its own name. Open it at "
    "http://localhost:<port>/ or http://127.0.0.1:<port>/. A standalone sandbox bound to "
    "another interface also answers to its machine's name and the names given with "
    "--allow-host; an app's /_dmmail/ pages also to its SERVER_NAME."
)
JSON_REQUIRED = (
    "Control requests that change the sandbox must be sent with "
    "'Content-Type: application/json' (with or without a body): other content types are "
    "refused so that a web page cannot change the sandbox cross-site. With requests, pass "
    "json={...}; with curl, add -H 'Content-Type: application/json'."
)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``value`` as an IP address (IPv4-mapped IPv6 unwrapped, zone dropped), or None."""
    try:
        address = ipaddress.ip_address(value.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_address(value: str | None) -> bool:
    """Whether ``value`` is a loopback IP address (``127.0.0.0/8``, ``::1``, IPv4-mapped)."""
    address = _address(value or "")
    return address is not None and address.is_loopback


def _host_name(host: str) -> str | None:
    """The name in a ``Host`` value without port, brackets or a final dot, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
    elif host.count(":") > 1:
        name = host  # a bare IPv6 address (no port can be told apart)
    else:
        name = host.partition(":")[0]
    name = name.rstrip(".")
    return name or None


def _is_loopback_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost") or is_loopback_address(name)


def _normalise(name: str) -> str | None:
    found = _host_name(name)
    if found is None:
        return None
    address = _address(found)
    return str(address) if address is not None else found


def sandbox_host_names(bound_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names, besides loopback ones, that a sandbox bound to ``bound_host`` accepts.

    A sandbox bound to loopback accepts only ``extra``. Bound to another interface on purpose
    (``--host 0.0.0.0``, an address or a name), it also accepts what it was bound to and the
    machine's own name (``socket.gethostname()``); the address a request arrived on is
    accepted per request. ``extra`` names more (``--allow-host``).
    """
    names = {n for n in (_normalise(e) for e in extra) if n}
    bound = _normalise(bound_host)
    if bound is not None and not _is_loopback_name(bound):
        names.add(bound)
        machine = _normalise(socket.gethostname())
        if machine:
            names.add(machine)
    return frozenset(names)


def _server_name_host(config: Mapping[str, Any]) -> str | None:
    server_name = config.get("SERVER_NAME")
    return _normalise(server_name) if isinstance(server_name, str) else None


def host_refusal() -> str | None:
    """Why the current request's ``Host`` is refused, or None when it is accepted.

    Accepted: loopback names and addresses, ``*.localhost``, the address the request arrived
    on (when the sandbox's server recorded it), the app's ``SERVER_NAME``, and a sandbox
    app's extra names (``app.extensions["dmmail_sandbox_hosts"]``).
    """
    name = _normalise(request.host) if request.host else None
    if name is None:
        return HOST_REFUSED
    if _is_loopback_name(name):
        return None
    local = request.environ.get(LOCAL_ADDR_KEY)
    if isinstance(local, str) and _normalise(local) == name:
        return None
    if name == _server_name_host(current_app.config):
        return None
    if name in current_app.extensions.get(HOSTS_EXTENSION, frozenset()):
        return None
    return HOST_REFUSED


def json_required() -> bool:
    """Whether the current request must be refused for want of a JSON content type.

    Every POST, PUT, PATCH and DELETE must say ``application/json``; GETs are reads whose
    answers a cross-site page cannot see.
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    return request.mimetype != "application/json"


def remote_client() -> bool:
    """Whether the current request may come from another machine.

    True when ``REMOTE_ADDR`` is not a loopback address, or when a proxy header is present:
    behind a proxy on the same machine every client seems to come from 127.0.0.1.
    """
    if not is_loopback_address(request.remote_addr):
        return True
    return any(header in request.headers for header in _FORWARDING_HEADERS)
