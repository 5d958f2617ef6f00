"""app.yaml sections for data operations: databases (PostgreSQL), caches (Redis), backups, jobs.

Every default traces to a runbook: slow statements over 10 s (001), connections 80 % / 90 %
of max_connections (000), queue lengths 500 / 1000 (000), one user's rate-limit keys
`rate:user:{user}:*` (004), backups kept daily for 7 days, weekly for 4 weeks and never past
30 days (000, 001), the data-retention job run dry first (000 section 5).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from bot.config.literal_secrets import endpoint
from bot.config.types import At, ContainerName, Duration, RoleName, ServiceName, Strict, Thresholds

# A Redis key or key pattern as app.yaml declares it: printable, no spaces, bounded.
RedisKey = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,200}$")]


class Database(Strict):
    """A PostgreSQL database opsbot may inspect, back up and restore."""

    dsn: str = Field(description="postgresql:// DSN, normally ${VAR}; its user needs pg_read_all_stats to see every role's connections and pg_signal_backend to kill them.")
    service: ServiceName | None = Field(None, description="The service it belongs to: its owners and container are the defaults below.")
    container: ContainerName | None = Field(
        None, description="Container with pg_dump/pg_restore, used through the Docker exec API; empty: the local client."
    )
    owners: list[RoleName] = Field([], description="Roles that may use its guarded commands; empty: the service's owners.")
    dependents: list[ServiceName] = Field([], description="Services stopped during a restore and started again after (runbook 003).")
    statement_timeout: Duration = Field(5.0, description="Every read opsbot makes runs in a read-only transaction under this timeout.")
    slow_after: Duration = Field(10.0, description="/db slow lists statements running longer than this (runbook 001).")
    connections: Thresholds = Field(
        Thresholds(warn=80, critical=90), description="Connections in use, % of max_connections (runbook 000)."
    )

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        return endpoint(value, ("postgresql://", "postgres://"))


class Retention(Strict):
    """Runbooks 000 and 001: daily backups for a week, weekly ones for a month, nothing past 30 days."""

    daily_days: int = Field(7, ge=1, le=3660, description="Keep the newest backup of each day for this many days.")
    weekly_weeks: int = Field(4, ge=0, le=520, description="Keep the newest backup of each ISO week for this many weeks.")
    max_age_days: int = Field(30, ge=1, le=3660, description="Delete anything older, whatever the rules above keep.")
    min_age: Duration = Field(
        86400.0,
        description="Never delete a backup younger than this, whatever the rules above say: the backup a runbook takes "
        "before a risky operation survives the next scheduled one.",
    )


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class LocalStorage(Strict):
    """Dumps as files in backups.directory (the default)."""

    kind: Literal["local"] = "local"


class S3Storage(Strict):
    """Dumps as objects in an S3 bucket: AWS S3 or an S3-compatible store (MinIO, Cloudflare R2, Backblaze B2)."""

    kind: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", description="The bucket; it must exist.")
    prefix: str = Field(
        "",
        pattern=r"^[\x21-\x7e]{0,200}$",
        description="Prepended to every object key (e.g. opsbot/); the keys are <prefix><database>_<UTC time>_<6 random hex>.dump.",
    )
    endpoint_url: str | None = Field(
        None, description="The store's URL for an S3-compatible store (https://<account>.r2.cloudflarestorage.com); empty: AWS S3."
    )
    region: str | None = Field(None, pattern=r"^[a-z0-9-]{1,40}$", description="The region (AWS); R2 takes auto.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="path for stores that serve buckets under the URL's path (MinIO); auto lets the client choose."
    )
    access_key_id_env: EnvName = Field(
        "AWS_ACCESS_KEY_ID",
        description="The environment variable holding the access key id (never the key itself). When it is unset the "
        "client's default chain is used (instance or pod role).",
    )
    secret_access_key_env: EnvName = Field("AWS_SECRET_ACCESS_KEY", description="The environment variable holding the secret key.")
    session_token_env: EnvName = Field("AWS_SESSION_TOKEN", description="The environment variable holding a session token, if any.")
    part_size_mb: int = Field(
        8,
        ge=5,
        le=512,
        description="Multipart upload size of the first parts in MiB; it doubles every 900 parts so S3's 10,000 parts hold up to 5 TiB (memory held is about two parts).",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else endpoint(value, ("https://", "http://"))


class BackupSettings(Strict):
    directory: str = Field(
        "backups",
        description="Where dumps are written with storage kind local, relative to the working directory or absolute. "
        "Every replica must see the same directory (a shared volume): backups record their file relative to it.",
    )
    storage: Annotated[LocalStorage | S3Storage, Field(discriminator="kind")] = Field(
        LocalStorage(),
        description="Where dumps go: local (files in directory) or s3 (objects in a bucket every replica reaches).",
    )
    retention: Retention = Retention()


class Cache(Strict):
    """A Redis server (one database of it) opsbot may inspect and clear."""

    url: str = Field(description="redis:// URL, normally ${VAR}; its database number is the one /cache flush empties.")
    service: ServiceName | None = Field(None, description="The service it belongs to: its owners are the default below.")
    owners: list[RoleName] = Field([], description="Roles that may use its guarded commands; empty: the service's owners.")
    queues: list[RedisKey] = Field([], description="List keys /cache queues measures with LLEN (runbook 004: queues:default).")
    queue_length: Thresholds = Field(Thresholds(warn=500, critical=1000), description="Queue length limits (runbook 000).")
    memory: Thresholds = Field(Thresholds(warn=80, critical=90), description="used_memory, % of maxmemory.")
    rate_limit_patterns: list[RedisKey] = Field(
        ["rate:user:{user}:*"], description="Key patterns of one user's rate limits; {user} is the id typed (runbook 004)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return endpoint(value, ("redis://", "rediss://"))

    @field_validator("rate_limit_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern.count("{user}") != 1:
                raise ValueError(f"'{pattern}' must contain {{user}} exactly once, so it only ever matches one user's keys")
            if pattern.replace("{user}", "").strip("*?") == "":
                raise ValueError(f"'{pattern}' would match almost every key; give it a fixed prefix")
            from bot.cache.keys import unsafe_pattern

            problem = unsafe_pattern(pattern)
            if problem:
                raise ValueError(problem)
        return value


def check_database_references(databases: dict, caches: dict, services: dict, roles: dict) -> list[At]:
    problems = []
    for kind, section, entries in (("database", "databases", databases), ("cache", "caches", caches)):
        for name, entry in entries.items():
            if entry.service and entry.service not in services:
                problems.append(At((section, name, "service"), f"{kind} '{name}' names unknown service '{entry.service}'"))
            for i, role in enumerate(entry.owners):
                if role not in roles:
                    problems.append(At((section, name, "owners", i), f"{kind} '{name}' is owned by unknown role '{role}'"))
    for name, database in databases.items():
        for i, dependent in enumerate(database.dependents):
            if dependent not in services:
                problems.append(At(("databases", name, "dependents", i), f"database '{name}' names unknown dependent service '{dependent}'"))
    return problems
