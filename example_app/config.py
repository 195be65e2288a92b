"""Config classes, one per environment, chosen by DM_ENVIRONMENT."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).parent

#: The Notify templates this app uses: name -> template id in the Notify service.
TEMPLATES = {
    "welcome": "6f1a3c1e-8a0b-4c3e-9d0f-5b6a7c8d9e01",
    "reset_password": "0c2b8e7a-1f3d-4e5a-8b6c-7d9e0f1a2b3c",
}

#: Functional tests use addresses at these domains; on live stages their mail goes to one
#: safe address (Notify's simulator, so nothing bounces).
SAFE_ADDRESS = "simulate-delivered@notifications.service.gov.uk"
TEST_DOMAINS = {
    "example.com": SAFE_ADDRESS,
    "example.gov.uk": SAFE_ADDRESS,
    "user.marketplace.team": SAFE_ADDRESS,
}


#: Mailchimp audiences by name; live stages list their own (test) audiences here.
AUDIENCES = {"open_framework_notifications": "a1b2c3d4e5"}


class Config:
    SECRET_KEY: str | None = os.environ.get("SECRET_KEY", "not-secret-development-only")
    DM_NOTIFY_TEMPLATES = TEMPLATES
    DM_MAILCHIMP_AUDIENCES = AUDIENCES
    DM_NOTIFY_SANDBOX_TEMPLATES = str(HERE / "sandbox_seed.json")
    DM_NOTIFY_KEY: str | None = None


class Development(Config):
    """A developer's machine: a Notify *test* key from DM_NOTIFY_KEY (e.g. in .env), or,
    without one, the embedded sandbox."""

    DEBUG = True
    DM_NOTIFY_KEY = os.environ.get("DM_NOTIFY_KEY")


class Test(Config):
    """The test suite: always the sandbox."""

    TESTING = True
    DM_MAIL_SANDBOX = True
    DM_NOTIFY_RETRY_BACKOFF = 0.01


class Live(Config):
    """Preview, staging and production: the key comes from the environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    DM_MAIL_SANDBOX = False
    DM_NOTIFY_REDIRECT_DOMAINS_TO_ADDRESS = TEST_DOMAINS


class Preview(Live):
    DM_ENVIRONMENT = "preview"


class Staging(Live):
    DM_ENVIRONMENT = "staging"


class Production(Live):
    DM_ENVIRONMENT = "production"


configs: dict[str, type[Config]] = {
    "development": Development,
    "test": Test,
    "preview": Preview,
    "staging": Staging,
    "production": Production,
}
