"""Sphinx configuration for the flask-dmmail documentation (the guide and the API reference).

Build it with ``sphinx-build -W -n docs docs/_build/html`` (warnings and broken references are
errors). Nothing here reaches the network: there is no intersphinx.
"""

from __future__ import annotations

project = "flask-dmmail"
author = "flask-dmmail developers"
copyright = "flask-dmmail developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

# The guide is Markdown (MyST), the API reference reStructuredText.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Headings get anchors, so that a guide page can link to a section of another page:
# [Mailchimp commands](cli.md#mailchimp-commands-flask-dmmail-mailchimp).
myst_heading_anchors = 3

# The API reference documents what each public module's ``__all__`` names, where users import it.
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "both"

nitpicky = True
# Types from other packages that autodoc puts in signatures and bases. With no intersphinx (CI has
# no network but the package registries) they cannot be linked; each pattern names one external
# package or a standard-library module, never a flask_dmmail name.
nitpick_ignore_regex = [
    # Flask, Werkzeug, click and blinker (the app, requests and responses, CLI and signal types).
    (r"py:.*", r"(flask|werkzeug|click|blinker)(\..+)?"),
    # Celery, kombu and redis (queued sends: the Celery app, its tasks, the Redis client).
    (r"py:.*", r"(celery|kombu|redis)(\..+)?|Celery|Task"),
    # requests and urllib3 (sessions and responses of the HTTP layer).
    (r"py:.*", r"(requests|urllib3)(\..+)?"),
    # The redis client of the shared Notify budget.
    (r"py:.*", r"redis(\..+)?"),
    # The same types written without their module (imported only for type checking, or with
    # ``from os import PathLike``): Flask's app and os.PathLike.
    (r"py:.*", r"Flask|PathLike"),
    # pytest (the pytest plugin's fixtures take its request).
    (r"py:.*", r"(_pytest|pytest)(\..+)?"),
    # WSGI types from typeshed (``_typeshed.wsgi``), which exist only for type checkers.
    (r"py:.*", r"WSGIApplication|StartResponse|WSGIEnvironment"),
    # The standard library.
    (
        r"py:.*",
        r"(collections(\.abc)?|datetime|os|pathlib|threading|enum|typing|types|sqlite3|io|csv|"
        r"logging|contextlib|dataclasses|email|hmac|uuid|concurrent\.futures)\..+",
    ),
]

html_theme = "furo"
html_title = "flask-dmmail"
