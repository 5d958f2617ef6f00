"""app.yaml never holds a secret: a password, token or credential header must be a ${VAR} reference."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from bot.redaction_rules import is_secret_name

_WHOLE_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_QUERY_PARAMETER = re.compile(r"[?&]([^=&#\s]{1,64})=([^&#]*)")
_AUTH_SCHEME = re.compile(r"\s*(?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?", re.IGNORECASE)
_ENV_CREDENTIAL = re.compile(r"(?:token=)?\"?\$\{[A-Za-z_][A-Za-z0-9_]*\}\"?\s*", re.IGNORECASE)  # Token token="${T}"
_IN_THE_FILE = "is written in the file; use ${VAR} and set it in the environment"


def no_literal_password(value: str) -> str:
    """Secrets never live in app.yaml: the password of user:password@ in a DSN/URL, and a query parameter
    named like a secret (?password=, &sslpassword=, ?token=), must be exactly ${VAR}."""
    if "://" in value and "@" in value:
        authority = value.split("://", 1)[1].split("@", 1)[0]
        _, colon, password = authority.partition(":")
        if colon and password and not _WHOLE_ENV_REF.fullmatch(password):
            raise ValueError(f"the password {_IN_THE_FILE}")
    for name, literal in _QUERY_PARAMETER.findall(value):
        if literal and is_secret_name(name) and not _WHOLE_ENV_REF.fullmatch(literal):
            raise ValueError(f"the {name} query parameter {_IN_THE_FILE}")
    return value


def no_literal_credential(headers: dict[str, str]) -> dict[str, str]:
    """Authorization (Bearer, Basic, Token ...) and secret-named headers (X-API-Key) must carry ${VAR}."""
    for name, value in headers.items():
        if name.lower() in ("authorization", "proxy-authorization"):
            credential = value[_AUTH_SCHEME.match(value).end() :]
        elif is_secret_name(name):
            credential = value
        else:
            continue
        if credential and not _ENV_CREDENTIAL.fullmatch(credential):
            raise ValueError(f"the {name} header {_IN_THE_FILE}")
    return headers


def endpoint(value: str, schemes: tuple[str, ...]) -> str:
    """A URL or DSN as app.yaml writes it: one of `schemes`, or a whole ${VAR}; never with a literal secret."""
    if not (value.startswith(schemes) or value.startswith("${")):
        raise ValueError(f"must start with {' or '.join(schemes)}, or be ${{VAR}}")
    return no_literal_password(value)


HttpUrl = Annotated[str, AfterValidator(lambda value: endpoint(value, ("http://", "https://")))]
CredentialHeaders = Annotated[dict[str, str], AfterValidator(no_literal_credential)]
