"""Process settings from the environment (12-factor); a .env file is read when present."""
from __future__ import annotations

import os
from dataclasses import dataclass

from dotenv import load_dotenv

from bot.redaction import refresh_secrets

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///opsbot.db"


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str | None
    slack_signing_secret: str | None
    slack_app_token: str | None
    slack_api_url: str
    database_url: str
    redis_url: str | None
    config_path: str
    port: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        if environ is None:
            load_dotenv(os.path.join(os.getcwd(), ".env"), override=False)
            refresh_secrets()  # the .env file may have added secret variables
            environ = dict(os.environ)
        api_url = environ.get("SLACK_API_URL") or "https://slack.com/api/"
        try:
            port = int(environ.get("PORT") or 3000)
        except ValueError:
            raise SystemExit(f"PORT must be a number, not {environ['PORT']!r}.") from None
        return cls(
            slack_bot_token=environ.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=environ.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=environ.get("SLACK_APP_TOKEN") or None,
            slack_api_url=api_url if api_url.endswith("/") else api_url + "/",
            database_url=environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=environ.get("REDIS_URL") or None,
            config_path=environ.get("OPSBOT_CONFIG") or "app.yaml",
            port=port,
        )

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))

    def __repr__(self) -> str:  # never print a token by accident
        return f"Settings(database={_scheme(self.database_url)}, redis={'set' if self.redis_url else 'unset'}, config={self.config_path})"


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]
