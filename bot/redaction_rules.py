"""What a secret looks like in text, found in time linear in the length of the text.

Each pattern either starts on a literal ('://', 'bearer', '-----BEGIN ', a token's prefix) or behind
a boundary that a run of name characters passes only once, repeats without backtracking (possessive
quantifiers) or within a fixed bound, and never crosses a line break. A rule that needs more than
a regular expression (is this name a secret's name? does this base64 decode to user:password?
where does this PEM block end? does this line run curl? where is the last '@' of the address?)
runs in Python on what one match found, reading each line at most once. The rules return spans
of the original text; bot.redaction merges them and writes the mask.
"""
from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Iterator
from urllib.parse import quote, quote_plus

Span = tuple[int, int]
Found = tuple[int, int, int]  # where the match that found it starts, then the span to mask
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

# A key that may name a secret: the hint looks for one of the words within its first 64 characters,
# so only such keys (not every a=b) reach is_secret_name().
_HINT = r"(?=[A-Za-z0-9_.-]{0,64}?(?i:pass|pwd|secret|token|key))"
_NAME = r"(?P<name>[A-Za-z0-9_.-]++)"
# = and : as in env files, YAML and JSON; := (Go), => (Ruby, PHP, Perl)
_DELIMITER = r"[ \t]{0,16}+(?:=>|:=|[=:])[ \t]{0,16}+"
# "password": ..., 'x-api-key': ..., and subscripts: ENV['API_TOKEN'] = ..., $config["secret"] = ...
_QUOTED_KEY = re.compile(rf"([\"']){_HINT}{_NAME}\1\]?+{_DELIMITER}")
_PLAIN_KEY = re.compile(rf"(?<![A-Za-z0-9_.?&-]){_HINT}{_NAME}{_DELIMITER}")  # DB_PASSWORD=..., --token=...
_QUERY_KEY = re.compile(rf"(?<=[?&]){_HINT}{_NAME}=")  # ?sslpassword=...&
_FLAG = re.compile(rf"(?<![A-Za-z0-9_.-])--{_HINT}(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*+)[ \t]++(?![-\s])")  # --password X
_QUOTED = r"\"(?:[^\"\\\n]|\\.)*+\"?|'(?:[^'\\\n]|\\.)*+'?"  # an unclosed quote runs to the end of the line
# An unquoted value runs to whitespace: a password may hold ',' and ';' (abc,def;ghi is one value).
_VALUE = re.compile(rf"{_QUOTED}|\S++")
_JSON_VALUE = re.compile(rf"{_QUOTED}|[^\s,;}}\]]++")
_QUERY_VALUE = re.compile(r"[^&#\s\"'<>]++")

# The password of user:password@ in a DSN or URL: what follows the user's ':' up to the last '@' of
# the address, so it may hold '/', ':' and '@' (host:8080/path@x is a port, not a password). The
# address is read at most PASSWORD_MAX characters, never past whitespace, a quote or the next '://',
# so a run of '://' costs one short attempt each. A user name holds no '[' (http://[::1]:80/).
PASSWORD_MAX = 2048
_USERINFO = re.compile(
    r"://[^\s:/@\[\]]{0,256}+:(?!\d{1,5}+(?:[/?#\s]|\Z))"
    rf"(?=(?:(?!://)[^\s\"<>@]){{0,{PASSWORD_MAX}}}+@)"  # an '@' ahead, or no match (and no Python) at all
    rf"(?P<address>(?:(?!://)[^\s\"<>]){{1,{PASSWORD_MAX}}}+)"
)
# curl -u user:password (also -uuser:password, --user user:password, --user=...), on a line that runs
# curl (a continued line, ending in '\', counts with it): docker -u 1000:1000 is a uid, not a password.
_CURL = re.compile(r"curl(?<![A-Za-z0-9_]curl)\b")  # the literal first: a fast search
_CURL_USER = re.compile(rf"-(?<!\S-)(?:u[ \t]*+|-user(?:=|[ \t]++))(?P<value>{_QUOTED}|\S++)")  # '-' first: a fast search
_SCHEMES = r"(?:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|key|sso-key)"
_AUTHORIZATION = re.compile(
    rf"\b(?:proxy-)?authorization[\"']?{_DELIMITER}[\"']?"
    rf"(?:{_SCHEMES}[ \t]++(?P<secret>[^\s\"',;]++)|(?P<bare>[A-Za-z0-9._~+/=-]{{16,}}+))",
    re.IGNORECASE,
)
# SQL: ALTER ROLE app PASSWORD 'x', CREATE USER u WITH ENCRYPTED PASSWORD 'x' (and E'x'); '' is a quote
# inside the literal. The word is a literal behind a boundary; the literal is read once, to its closing
# quote or, unclosed, to the end of the line.
_SQL_PASSWORD = re.compile(r"(?<![A-Za-z0-9_])password[ \t]++(?P<secret>E?'(?:[^'\n]|'')*+'?)", re.IGNORECASE)
_BEARER = re.compile(r"\bbearer[ \t]++(?P<secret>[A-Za-z0-9._~+/=-]++)", re.IGNORECASE)
_BASIC = re.compile(r"\bbasic[ \t]++(?P<secret>[A-Za-z0-9+/]{4,}+={0,2}+)(?![A-Za-z0-9+/=])", re.IGNORECASE)
# Tokens recognised by their shape alone, as public secret scanners (gitleaks, trufflehog,
# detect-secrets, GitHub secret scanning) document them, one alternative each. Every one starts on a
# literal character at the start of a word (see _by_first_character). Each then reads a bounded or
# possessive run: one short attempt per word start.
_TOKEN_SHAPES = (
    r"eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]*+(?:\.[A-Za-z0-9_-]*+)?",  # a bare JWT, also when cut short
    r"xox[abposre]-[A-Za-z0-9-]++", r"xapp-[A-Za-z0-9-]++",  # Slack
    r"gh[pousr]_[A-Za-z0-9]{10,}+", r"github_pat_[A-Za-z0-9_]{10,}+",  # GitHub, classic and fine-grained
    r"sk_(?:live|test|prod)_[A-Za-z0-9]++", r"rk_(?:live|test|prod)_[A-Za-z0-9]++", r"whsec_[A-Za-z0-9]{24,}+",  # Stripe
    r"A(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"gl(?:pat|ptt|dt|rt|soat|ffct|ft|cbt|imt|agent|oas)-[A-Za-z0-9_-]{20,}+(?:\.[0-9a-z]{9}\b)?",  # GitLab
    r"GR1348941[A-Za-z0-9_-]{20,}+",  # GitLab runner registration
    r"sk-ant-[a-z]{3,5}\d\d-[A-Za-z0-9_-]{20,}+",  # Anthropic
    r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}+", r"sk-[A-Za-z0-9]{32,}+",  # OpenAI (and sk- keys like it)
    r"npm_[A-Za-z0-9]{36}",  # npm
    r"pypi-AgE[A-Za-z0-9_-]{50,}+",  # PyPI (a macaroon: pypi.org and test.pypi.org)
    r"AIza[A-Za-z0-9_-]{35}", r"GOCSPX-[A-Za-z0-9_-]{28}", r"ya29\.[A-Za-z0-9_-]{20,}+",  # Google key, OAuth secret, token
    r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",  # SendGrid
    r"SK[0-9a-fA-F]{32}\b",  # Twilio API key
    r"hv[sbr]\.[A-Za-z0-9_-]{24,}+",  # Vault service, batch and recovery tokens
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",  # age
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"dapi[a-f0-9]{32}(?:-\d)?+",  # Databricks
    r"hf_[A-Za-z]{34}", r"api_org_[A-Za-z]{34}",  # Hugging Face
    r"glc_[A-Za-z0-9+/]{32,}+={0,3}+", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",  # Grafana Cloud, service accounts
    r"sntry[us]_[A-Za-z0-9+/=_]{40,}+",  # Sentry
    r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",  # Postman
    r"pul-[a-f0-9]{40}",  # Pulumi
    r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}+",  # Doppler
    r"lin_api_[A-Za-z0-9]{40}",  # Linear
    r"dckr_pat_[A-Za-z0-9_-]{27,}+",  # Docker Hub
    r"ATATT3[A-Za-z0-9_=-]{100,}+",  # Atlassian
    r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",  # Dynatrace
    r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_.=-]{32,}+",  # PlanetScale
    r"ops_eyJ[A-Za-z0-9+/=]{100,}+",  # 1Password service accounts
    r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}",  # Brevo (Sendinblue)
    r"rubygems_[a-f0-9]{48}",  # RubyGems
    r"fo1_[A-Za-z0-9_-]{43}", r"fm[12][ar]?_[A-Za-z0-9+/]{100,}+={0,3}+",  # Fly.io
    r"ntn_\d{11}[A-Za-z0-9]{35}", r"secret_[A-Za-z0-9]{43}\b",  # Notion
    r"pplx-[A-Za-z0-9]{48}", r"gsk_[A-Za-z0-9]{52}", r"r8_[A-Za-z0-9]{37}",  # Perplexity, Groq, Replicate
    r"sbp_[a-f0-9]{40}",  # Supabase
    r"NRAK-[A-Z0-9]{27}",  # New Relic user keys
    r"sq0atp-[A-Za-z0-9_-]{22,}+", r"sq0csp-[A-Za-z0-9_-]{22,}+", r"EAAA[A-Za-z0-9_-]{60}",  # Square
    r"AKCp[A-Za-z0-9]{69}",  # Artifactory
    r"HRKU-AA[A-Za-z0-9_-]{58}",  # Heroku
    r"sha256~[A-Za-z0-9_-]{43}",  # OpenShift
    r"LTAI[A-Za-z0-9]{20}\b",  # Alibaba Cloud
    # Discord bot tokens: a base64 user id (it holds a digit: 'MonitoringServiceHandler.handle.' does not),
    # a timestamp and an HMAC.
    *(rf"{first}(?=[A-Za-z0-9_-]{{0,25}}?\d)[A-Za-z0-9_-]{{23,25}}\.[A-Za-z0-9_-]{{6}}\.[A-Za-z0-9_-]{{27,38}}" for first in "MNO"),
)


def _by_first_character(shapes: tuple[str, ...]) -> str:
    """The shapes as one alternative per first character (each starts on a literal one), tried only where
    a word starts: one attempt per word start, and inside a long run of word characters none at all
    (an attempt at every 'e' would read the run again to its end looking for a JWT's '.eyJ')."""
    groups: dict[str, list[str]] = {}
    for shape in shapes:
        groups.setdefault(shape[0], []).append(shape[1:])
    return "(?<![A-Za-z0-9_])(?:" + "|".join(f"{first}(?:{'|'.join(rests)})" for first, rests in groups.items()) + ")"


_TOKENS = re.compile(_by_first_character(_TOKEN_SHAPES))
# Shapes with no literal prefix, searched only where their literal middle occurs in the text at all.
_MARKED_TOKENS = (
    (":AA", re.compile(r"(?<!\d)\d{8,10}:AA[A-Za-z0-9_-]{33}")),  # Telegram bots (also in .../bot<token>/getMe)
    ("Q~", re.compile(r"\b[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}")),  # Azure AD client secrets
    ("-us", re.compile(r"\b[0-9a-f]{32}-us\d{1,2}\b")),  # Mailchimp
    (".atlasv1.", re.compile(r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}")),  # Terraform Cloud
)
# The secret part of a webhook address: Slack, Discord, Microsoft Teams.
_WEBHOOK_HOSTS = ("hooks.slack.com/", ".com/api/webhooks/", ".webhook.office.com/")
_WEBHOOKS = re.compile(
    r"\bhooks\.slack\.com/(?:services|workflows|triggers)/(?P<slack>[A-Za-z0-9_/+-]{20,}+)"
    r"|\bdiscord(?:app)?+\.com/api/webhooks/\d{5,20}+/(?P<discord>[A-Za-z0-9_-]{20,}+)"
    r"|\.webhook\.office\.com/webhookb2/(?P<teams>[A-Za-z0-9@/_-]{40,}+)"
)
# Signatures and session tokens in presigned addresses (Azure SAS sig=, AWS and Google X-*-Signature).
_SIGNATURE = re.compile(
    r"[?&](?i:sig|signature|x-amz-signature|x-goog-signature|x-amz-security-token)=(?P<secret>[^&#\s\"'<>]++)"
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_INDENT = re.compile(r"[ \t]*+")
_PEM_BODY = re.compile(r"[ \t]*+(?:[A-Za-z0-9+/=]++|(?:Proc-Type|DEK-Info|Version|Comment):[^\n]*+)?[ \t\r]*+")

# Words of a key name: snake, kebab, dotted and camelCase (APIKey -> API, Key; KeyError -> Key, Error).
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")  # names are cut to 64 characters first
_ANYWHERE = {"password", "passwd", "secret", "passphrase"}
_LAST = {"key", "pwd", "token"}  # only as the last word: KeyError, token_type, keyboard are not secrets
_SUFFIXES = ("password", "passwd", "secret", "token", "passphrase", "apikey", "secretkey", "accesskey", "privatekey")
_NOT_VALUES = {"error", "errors", "exception"}  # InvalidPasswordError: ... names an exception
# Keys that identify something rather than unlock it: cache_key, idempotency_key, public_key, sort_key.
_IDENTIFYING = {
    "cache", "idempotency", "dedup", "dedupe", "partition", "sort", "routing", "primary", "foreign", "public",
    "object", "hash", "range", "row", "shard", "lookup", "composite", "natural", "sequence", "message", "group",
}


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """api_key, X-API-Key, AWS_SECRET_ACCESS_KEY, db_password, auth_token, pwd: yes. KeyError, monkey, tokenizer,
    InvalidPasswordError, cache_key, idempotency_key: no."""
    parts = [p.lower() for p in _PART.findall(name[-64:])]
    while parts and parts[-1].isdigit():
        parts.pop()  # password2, token_1
    if not parts or parts[-1] in _NOT_VALUES or (parts[-1] == "key" and len(parts) > 1 and parts[-2] in _IDENTIFYING):
        return False
    return parts[-1] in _LAST or parts[-1].endswith(_SUFFIXES) or not _ANYWHERE.isdisjoint(parts)


def rule_spans(text: str) -> Iterator[Found]:
    """Every span of text that the line rules say is secret (they may overlap), with where its match
    starts. Private keys, the one rule that follows lines, are private_keys()."""
    yield from _keyed(text, _QUOTED_KEY, _JSON_VALUE, inside_quotes=True)
    yield from _keyed(text, _PLAIN_KEY, _VALUE)
    yield from _keyed(text, _QUERY_KEY, _QUERY_VALUE)
    yield from _keyed(text, _FLAG, _VALUE)
    for match in _USERINFO.finditer(text):
        start, end = match.span("address")
        at = text.rfind("@", start, end)
        if at > start:
            yield match.start(), start, at
    yield from _curl_users(text)
    patterns = [_AUTHORIZATION, _BEARER, _SIGNATURE]
    if any(host in text for host in _WEBHOOK_HOSTS):  # a substring search costs less than the pattern
        patterns.append(_WEBHOOKS)
    for pattern in patterns:
        for match in pattern.finditer(text):
            yield match.start(), *match.span(match.lastgroup)  # the secret, by whichever name
    for match in _SQL_PASSWORD.finditer(text):
        start, end = match.span("secret")
        start = text.index("'", start) + 1
        end -= end - start >= 1 and text[end - 1] == "'" and not text.endswith("''", start, end)
        if start < end:
            yield match.start(), start, end
    for match in _BASIC.finditer(text):
        if _is_user_password(match["secret"]):
            yield match.start(), *match.span("secret")
    for match in _TOKENS.finditer(text):
        yield match.start(), *match.span()
    for marker, pattern in _MARKED_TOKENS:
        if marker in text:
            yield from ((match.start(), *match.span()) for match in pattern.finditer(text))


def _keyed(text: str, key: re.Pattern[str], value: re.Pattern[str], inside_quotes: bool = False) -> Iterator[Found]:
    """The value after a key named like a secret. A masked value is skipped whole; any other key only
    up to its '=' or ':', so 'env=DB_PASSWORD=x' still finds DB_PASSWORD."""
    pos = 0
    while match := key.search(text, pos):
        pos = match.end()
        if not is_secret_name(match["name"]):
            continue
        found = value.match(text, pos)
        if found is None:
            continue
        start, end = _unquoted(text, *found.span())
        if start == end:
            continue  # "password": "" stays visibly empty
        if not inside_quotes:
            start, end = found.span()
        yield match.start(), start, end
        pos = max(pos, found.end())


def _unquoted(text: str, start: int, end: int) -> Span:
    """A value without its quotes, if it has any (an unclosed quote runs to the value's end)."""
    if text[start] in "\"'":
        closed = end - start > 1 and text[end - 1] == text[start]
        return start + 1, end - closed
    return start, end


def _curl_users(text: str) -> Iterator[Found]:
    """The password of curl -u user:password: after the first ':' of the value, when the line runs curl
    before it. Each line holding a -u is read once to its ends (lines continued with '\\' count as one)."""
    line_end, curl_end = -1, -1
    for match in _CURL_USER.finditer(text):
        if match.start() >= line_end:
            line_start, line_end = _logical_line(text, match.start())
            curl = _CURL.search(text, line_start, line_end)
            curl_end = curl.end() if curl else line_end
        if curl_end > match.start():
            continue
        start, stop = _unquoted(text, *match.span("value"))
        colon = text.find(":", start, stop)
        if colon != -1 and colon + 1 < stop:
            yield match.start(), colon + 1, stop


def _logical_line(text: str, pos: int) -> Span:
    """The line around pos, with the lines it continues and that continue it (a '\\' at the end)."""
    start = text.rfind("\n", 0, pos) + 1
    while start and text.endswith(("\\\n", "\\\r\n"), 0, start):
        start = text.rfind("\n", 0, start - 1) + 1
    end = _line_end(text, pos)
    while end < len(text) and text.endswith(("\\", "\\\r"), start, end):
        end = _line_end(text, end + 1)
    return start, end


def _is_user_password(encoded: str) -> bool:
    """A bare 'Basic <base64>' is masked only when it decodes to user:password ('basic configuration' is not)."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return ":" in decoded and decoded.isprintable()


def private_keys(text: str) -> Iterator[Found]:
    """From a BEGIN ... PRIVATE KEY line: to the END line, or over the key's lines when the END was cut off.

    A BEGIN with no END on its line masks the rest of that line (a key escaped into one JSON string, or
    cut short), then every following line that looks like key material.
    """
    pos = 0
    while begin := _PEM_BEGIN.search(text, pos):
        start = begin.end()
        line_end = _line_end(text, start)
        end = _PEM_END.search(text, start, line_end)
        if end is not None:
            yield begin.start(), start, end.start()
            pos = end.end()
            continue
        stop = line_end
        while stop < len(text):
            next_end = _line_end(text, stop + 1)
            indent = _INDENT.match(text, stop + 1, next_end).end()
            if _PEM_END.match(text, indent, next_end):
                stop = indent
                break
            if not _PEM_BODY.fullmatch(text, stop + 1, next_end):
                break
            stop = next_end
        yield begin.start(), start, stop
        pos = max(stop, line_end)


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


@lru_cache(maxsize=1024)
def encoded_forms(value: str) -> frozenset[str]:
    """The value as it may appear in text: as is, URL-encoded, base64 (standard and URL-safe, padded or
    not, whole or as part of a longer encoded blob such as user:password)."""
    forms = {value}
    for form in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms.update((form, re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form)))
    raw = value.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update((whole, whole.rstrip("=")))
        for offset in (0, 1, 2):
            # Inside a longer blob only the characters that the value's own bits decide are fixed.
            coded = encode(b"\0" * offset + raw).decode()
            forms.add(coded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def word_forms(value: str) -> frozenset[str]:
    """A short credential as it may appear: as is and URL-encoded (masked as whole words only)."""
    return frozenset({value, quote(value, safe=""), quote_plus(value)})
