"""Typed action parameters: what chat may fill in, checked before anything is planned.

A value is parsed from the text typed (`/run vacuum database=app table=events`) into a
JSON value the plan stores; a bad one is refused with a sentence naming the parameter.
Values never reach a shell: docker_exec passes them as whole arguments, SQL binds them or
quotes them as identifiers after these checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import regex

from bot.config.types import format_duration, parse_duration

MAX_VALUE = 200
# Identifiers as a PostgreSQL table name typed in chat: schema.table, letters, digits, _ and $.
_IDENTIFIER = regex.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")


class BadParameter(ValueError):
    """The sentence is the whole answer."""


@dataclass(frozen=True)
class ParamType:
    type: str  # enum | int | duration | pattern | service | database | cache | bool | identifier | text
    description: str = ""
    values: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    max_duration: float | None = None
    pattern: str | None = None
    default: object = None
    required: bool = True

    def usage(self, name: str) -> str:
        shown = {
            "enum": "|".join(self.values),
            "int": "N",
            "duration": "1h",
            "bool": "true|false",
            "identifier": "table",
        }.get(self.type, self.type)
        text = f"{name}={shown}"
        return text if self.required else f"[{text}]"

    def parse(self, name: str, raw: str, config) -> object:
        if len(raw) > MAX_VALUE:
            raise BadParameter(f"{name} is too long (at most {MAX_VALUE} characters).")
        if self.type == "enum":
            if raw not in self.values:
                raise BadParameter(f"{name} must be one of: {', '.join(self.values)}.")
            return raw
        if self.type == "int":
            try:
                value = int(raw)
            except ValueError:
                raise BadParameter(f"{name} must be a whole number.") from None
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise BadParameter(f"{name} must be between {self.min if self.min is not None else '-inf'} and {self.max if self.max is not None else 'inf'}.")
            return value
        if self.type == "duration":
            try:
                seconds = parse_duration(raw)
            except ValueError as exc:
                raise BadParameter(f"{name}: {exc}.") from None
            if self.max_duration is not None and seconds > self.max_duration:
                raise BadParameter(f"{name} can be at most {format_duration(self.max_duration)}.")
            return seconds
        if self.type == "bool":
            lowered = raw.lower()
            if lowered in ("true", "yes", "1", "on"):
                return True
            if lowered in ("false", "no", "0", "off"):
                return False
            raise BadParameter(f"{name} must be true or false.")
        if self.type == "pattern":
            try:
                matched = regex.fullmatch(self.pattern or "", raw, timeout=0.5)
            except TimeoutError:
                matched = None
            if not matched:
                raise BadParameter(f"{name} must match {self.pattern}.")
            return raw
        if self.type == "identifier":
            if not _IDENTIFIER.fullmatch(raw):
                raise BadParameter(f"{name} must be a table name: letters, digits and _, optionally schema.table; no quotes or ';'.")
            return raw
        if self.type == "service":
            return _named(name, raw, config.services, "service")
        if self.type == "database":
            return _named(name, raw, config.databases, "database")
        if self.type == "cache":
            return _named(name, raw, config.caches, "cache")
        if self.type == "text":
            if any(ord(ch) < 32 for ch in raw):
                raise BadParameter(f"{name} must be one line of text.")
            return raw
        raise BadParameter(f"{name} has an unknown type {self.type}.")


def _named(name: str, raw: str, known: dict, what: str) -> str:
    if raw not in known:
        listed = ", ".join(sorted(known)[:20]) or f"none: app.yaml declares no {what}s"
        raise BadParameter(f"Unknown {what} '{raw[:60]}' for {name}. Known: {listed}.")
    return raw


def from_config(declared) -> ParamType:
    """A Param of app.yaml (docker_exec and http actions) as a ParamType."""
    return ParamType(
        type=declared.type,
        description=declared.description,
        values=tuple(declared.values),
        min=declared.min,
        max=declared.max,
        max_duration=declared.max_duration,
        pattern=declared.pattern,
        default=declared.default,
        required=declared.default is None,
    )


def parse_params(types: dict[str, ParamType], given: dict[str, str], config) -> dict:
    """Typed values for `given` (name -> raw text), defaults filled in; BadParameter for the first problem."""
    unknown = [name for name in given if name not in types]
    if unknown:
        accepted = ", ".join(types) or "none"
        raise BadParameter(f"Unknown parameter '{unknown[0][:40]}'. This action takes: {accepted}.")
    values: dict = {}
    for name, kind in types.items():
        if name in given:
            values[name] = kind.parse(name, given[name], config)
        elif kind.default is not None:
            values[name] = kind.parse(name, str(kind.default), config) if isinstance(kind.default, str) else kind.default
        elif kind.required:
            raise BadParameter(f"Missing {name}: {kind.usage(name)}.")
        else:
            values[name] = None
    return values
