"""Small value types shared by the app.yaml models: durations, thresholds, env references."""
from __future__ import annotations

import math
import os
import re
from typing import Annotated, Mapping, NamedTuple
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# Names and Slack ids app.yaml uses in several sections (models.py, incident_models.py).
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ServiceName = RoleName = RotationName = Name
ContainerName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")]
SlackUserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]
SlackUserGroupId = Annotated[str, Field(pattern=r"^S[A-Z0-9]{2,}$")]
SlackChannel = Annotated[str, Field(pattern=r"^(#[a-z0-9._-]{1,80}|[CG][A-Z0-9]{2,})$")]


class At(NamedTuple):
    """A cross-reference problem and the key path it stands at (("services", "web", "depends_on", 0)),
    so `opsbot config check` can name the line of the reference, not the top of the file."""

    path: tuple
    message: str


class Strict(BaseModel):
    """Base for every app.yaml model: unknown keys are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Nothing the bot waits for or looks back over is longer; bigger values overflow datetime arithmetic.
MAX_DURATION_SECONDS = 3660 * 86400  # ten years


def parse_duration(value: object) -> float:
    """'500ms', '5s', '15m', '1h', '2d' or a bare number of seconds -> seconds, at most ten years."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 5s, 500ms, 15m or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("expected a duration like 5s, 500ms, 15m or 1h")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise ValueError("a duration can be at most 3660d (ten years)")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for whole units: 3600 -> '1h', 90 -> '90s'."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Thresholds(Strict):
    """Warn/critical limits where a higher reading is worse (percentages, latency, counts)."""

    warn: float | None = None
    critical: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if self.warn is not None and self.critical is not None and self.warn > self.critical:
            raise ValueError("warn must not be above critical")
        return self

    def grade(self, reading: float) -> str:
        if self.critical is not None and reading >= self.critical:
            return "critical"
        if self.warn is not None and reading >= self.warn:
            return "warning"
        return "ok"


class LatencyThresholds(Strict):
    """Latency limits in seconds; accepts durations ('1s', '250ms')."""

    warn: Duration | None = None
    critical: Duration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "LatencyThresholds":
        if self.warn is not None and self.critical is not None and self.warn > self.critical:
            raise ValueError("warn must not be above critical")
        return self

    def grade(self, seconds: float) -> str:
        return Thresholds(warn=self.warn, critical=self.critical).grade(seconds)


class FloorThresholds(Strict):
    """Warn/critical limits where a lower reading is worse (days to certificate expiry)."""

    warn: float | None = None
    critical: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "FloorThresholds":
        if self.warn is not None and self.critical is not None and self.warn < self.critical:
            raise ValueError("warn must not be below critical (lower readings are worse here)")
        return self

    def grade(self, reading: float) -> str:
        if self.critical is not None and reading <= self.critical:
            return "critical"
        if self.warn is not None and reading <= self.warn:
            return "warning"
        return "ok"


class MissingEnvironment(LookupError):
    """A ${VAR} reference names a variable that is not set."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(f"environment variable {', '.join(names)} is not set")


def env_refs(text: str) -> list[str]:
    return _ENV_REF.findall(text)


# Where a reference holds a credential: the password of scheme://user:${VAR}@, or ?password=${VAR}.
_AFTER_USER = re.compile(r"://[^\s/@]*:[^\s/@]*$")
_BEFORE_HOST = re.compile(r"[^\s/@]*@")
_AFTER_QUERY_KEY = re.compile(r"[?&]([A-Za-z0-9_.-]{1,64})=$")


def env_references(text: str) -> list[tuple[str, bool]]:
    """Each ${VAR} in text, and whether it sits where a credential goes (a URL's password, a secret query parameter)."""
    from bot.redaction_rules import is_secret_name

    found = []
    for match in _ENV_REF.finditer(text):
        before = text[max(0, match.start() - 300) : match.start()]
        password = _AFTER_USER.search(before) and _BEFORE_HOST.match(text, match.end())  # not host:${PORT}/
        query = _AFTER_QUERY_KEY.search(before[-80:])
        found.append((match.group(1), bool(password or (query and is_secret_name(query.group(1))))))
    return found


def register_env_value(value: str, credential: bool = False) -> None:
    """Tell the redactor about what a ${VAR} stands for, and about the password of a URL it holds.

    Registered whatever the variable's name: a ${DATABASE_DSN} or ${API_URL} that carries a credential
    is masked wherever it is echoed later. A short plain word (a path segment like 'health', a host like
    'localhost') is not a credential unless it is used as one, and masking it would blank that word in
    every later message.
    """
    from bot.redaction import register_secret  # here, not at the top: keeps this module free of bot imports

    if credential or not (value.isalpha() and len(value) < 12):
        register_secret(value, credential=credential)
    try:
        password = urlsplit(value).password if "://" in value else None
    except ValueError:
        password = None
    if password:
        register_secret(unquote(password), credential=True)


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ${VAR} with its value. Done at use time, so the loaded config never holds secrets.

    Each substituted value is registered with the redactor (register_env_value) here as well as at
    load time: the environment may have changed since.
    """
    env = os.environ if environ is None else environ
    missing = [name for name in env_refs(text) if name not in env]
    if missing:
        raise MissingEnvironment(missing)

    def substitute(match: re.Match[str]) -> str:
        value = env[match.group(1)]
        register_env_value(value)
        return value

    return _ENV_REF.sub(substitute, text)
