"""Secret redaction: cached environment secrets, values app.yaml refers to, formats, log tracebacks,
/logs lines, and the literal secrets app.yaml refuses. Time budgets and fuzzing: test_redaction_budget.py.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import uuid
from urllib.parse import quote, quote_plus

import pytest

import bot.redaction as redaction
import commands.logs
from bot.config.loader import ConfigError, parse_config
from bot.config.types import expand_env
from bot.redaction import CUT_MARK, MASK, RedactingFilter, redact, redact_lines, refresh_secrets, register_secret
from bot.settings import Settings


# --------------------------------------------------------------------------- 1. computed once


def test_environment_is_not_rescanned_on_every_call(monkeypatch):
    calls = []
    real = redaction.secret_values

    def counting(environ=None):
        calls.append(1)
        return real(environ)

    monkeypatch.setattr(redaction, "secret_values", counting)
    refresh_secrets()
    assert len(calls) == 1
    for _ in range(50):
        redact("nothing secret here DB_PASSWORD=x")
    assert len(calls) == 1, "redact() re-read the environment although it did not change"


def test_refresh_secrets_picks_up_changed_values(monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_REDACTION_TOKEN", "first-token-value")
    refresh_secrets()
    assert redact("a first-token-value b") == f"a {MASK} b"
    monkeypatch.setenv("OPSBOT_TEST_REDACTION_TOKEN", "second-token-value")
    refresh_secrets()
    assert redact("a second-token-value b") == f"a {MASK} b"


def test_settings_from_env_refreshes_after_loading_dotenv(tmp_path, monkeypatch):
    name = f"OPSBOT_TEST_REDACTION_DOTENV_{uuid.uuid4().hex[:8].upper()}_PASSWORD"
    (tmp_path / ".env").write_text(f"{name}=from-dotenv-secret\n")
    monkeypatch.chdir(tmp_path)
    refreshed = []
    real = redaction.refresh_secrets
    monkeypatch.setattr("bot.settings.refresh_secrets", lambda: (refreshed.append(name in os.environ), real()))
    try:
        Settings.from_env()
        assert refreshed == [True], "refresh_secrets() must run after the .env file is loaded"
        assert redact("x from-dotenv-secret y") == f"x {MASK} y"
    finally:
        os.environ.pop(name, None)  # load_dotenv wrote it outside monkeypatch
        refresh_secrets()


def test_extra_secrets_still_work():
    assert redact("extra abcdef", extra_secrets=["abcdef"]) == f"extra {MASK}"


# --------------------------------------------------------------------------- 2. values from ${VAR}


def test_expand_env_registers_values_whatever_the_variable_name(monkeypatch):
    value = f"postgresql://u@h/db?sslpassword=zz9top{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("DATABASE_DSN", value)
    refresh_secrets()
    # The name alone does not say secret: before expansion only the sslpassword= pattern bites.
    assert redact(f"cannot connect to {value}: refused") != f"cannot connect to {MASK}: refused"
    assert expand_env("${DATABASE_DSN}") == value
    assert redact(f"cannot connect to {value}: refused") == f"cannot connect to {MASK}: refused"
    # Still masked after the environment cache is rebuilt.
    refresh_secrets()
    assert value not in redact(f"again {value}")


def test_expanded_value_no_pattern_recognises_is_masked(monkeypatch):
    hook = f"https://hooks.example.com/services/T0/B0/{uuid.uuid4().hex}"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", hook)
    assert redact(f"posting to {hook}") == f"posting to {hook}"
    assert expand_env("${ALERT_WEBHOOK_URL}") == hook
    assert redact(f"posting to {hook}") == f"posting to {MASK}"


def test_expand_env_registers_each_value_and_skips_short_ones():
    token = f"tok-{uuid.uuid4().hex}"
    assert expand_env("a=${A} b=${B}", {"A": token, "B": "abc"}) == f"a={token} b=abc"
    assert redact(f"saw {token}") == f"saw {MASK}"
    assert redact("abc stays") == "abc stays"


def test_expand_env_does_not_register_short_plain_words():
    assert expand_env("http://h/${P}", {"P": "status"}) == "http://h/status"
    assert redact("status ok") == "status ok"
    long_word = "Correcthorsebatterystaple" + "".join(chr(97 + int(c, 16)) for c in uuid.uuid4().hex[:6])
    expand_env("${W}", {"W": long_word})
    assert redact(f"pw {long_word}") == f"pw {MASK}"


def test_register_secret_longest_value_first():
    short = f"s{uuid.uuid4().hex[:8]}"
    register_secret(short)
    register_secret(short + "-and-more")
    assert redact(f"[{short}-and-more]") == f"[{MASK}]"


# --------------------------------------------------------------------------- 2b. registered when app.yaml loads


def postgres_yaml(dsn: str, **more: str) -> str:
    extra = "".join(f"\n      - kind: http\n        url: http://127.0.0.1:1/x\n        {k}: {v}" for k, v in more.items())
    return f"services:\n  db:\n    checks:\n      - kind: postgres\n        dsn: {dsn}{extra}\n"


def test_values_app_yaml_refers_to_are_masked_from_load_on(monkeypatch):
    """A fresh server: no check has expanded ${VAR} yet, and /logs must not post the password."""
    password = f"Pg{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("OPSBOT_TEST_LOAD_DB_PW", password)  # the name does not say secret
    monkeypatch.delenv("OPSBOT_TEST_LOAD_UNSET", raising=False)
    parse_config(postgres_yaml("postgresql://app:${OPSBOT_TEST_LOAD_DB_PW}@db/${OPSBOT_TEST_LOAD_UNSET}"))
    assert redact(f"FATAL: password {password} rejected") == f"FATAL: password {MASK} rejected"
    assert commands.logs._read_lines(f"worker: connecting with {password}\n".splitlines(), None) == [f"worker: connecting with {MASK}"]


def test_a_referenced_dsn_hides_its_own_password(monkeypatch):
    password = f"Dsn{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("OPSBOT_TEST_LOAD_DSN", f"postgresql://app:{quote(password + '@')}@db/app")
    parse_config(postgres_yaml("${OPSBOT_TEST_LOAD_DSN}"))
    assert redact(f"auth failed for {password}@") == f"auth failed for {MASK}"


@pytest.mark.parametrize(
    "dsn, more",
    [
        ("redis://:${OPSBOT_TEST_LOAD_SHORT}@cache:6379/0", {}),
        ("postgresql://app@db/app?sslpassword=${OPSBOT_TEST_LOAD_SHORT}", {}),
        ("postgresql://app@db/app", {"headers": "{X-Api-Key: '${OPSBOT_TEST_LOAD_SHORT}'}"}),
        ("postgresql://app@db/app", {"headers": "{Authorization: 'Bearer ${OPSBOT_TEST_LOAD_SHORT}'}"}),
    ],
)
def test_short_credentials_are_masked_as_whole_words(monkeypatch, dsn, more):
    short = f"q{uuid.uuid4().hex[:3]}"
    monkeypatch.setenv("OPSBOT_TEST_LOAD_SHORT", short)
    parse_config(postgres_yaml(dsn, **more))
    assert redact(f"auth {short} failed; {short}x and x{short} stay") == f"auth {MASK} failed; {short}x and x{short} stay"


def test_plain_words_that_are_not_credentials_stay(monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_LOAD_HOST", "dbhost")
    monkeypatch.setenv("OPSBOT_TEST_LOAD_PORT", "5439")
    parse_config(postgres_yaml("postgresql://app:${OPSBOT_TEST_LOAD_UNSET_PW}@${OPSBOT_TEST_LOAD_HOST}:${OPSBOT_TEST_LOAD_PORT}/db"))
    assert redact("dbhost:5439 is down") == "dbhost:5439 is down"


# --------------------------------------------------------------------------- 3. formats


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"password": "hunter2", "api_key": "abc123"}', f'{{"password": "{MASK}", "api_key": "{MASK}"}}'),
        ("{'secret': 'x', 'user': 'bob'}", f"{{'secret': '{MASK}', 'user': 'bob'}}"),
        ('{"token":"a\\"b", "n": 1}', f'{{"token":"{MASK}", "n": 1}}'),
        ('{"x-api-key": 12345}', f'{{"x-api-key": {MASK}}}'),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {MASK}"),
        ("authorization=basic dXNlcjpwYXNz;", f"authorization=basic {MASK};"),
        ('curl -H "Basic dXNlcjpwYXNz"', f'curl -H "Basic {MASK}"'),
        ("basic configuration done", "basic configuration done"),
        ("basic auth is off", "basic auth is off"),
        ("token ghp_" + "a" * 36 + " end", f"token {MASK} end"),
        ("gho_" + "B1" * 18, MASK),
        ("ghs_" + "c" * 36, MASK),
        ("github_pat_11ABCDEFG0_" + "x" * 59, MASK),
        ("ghs_total stays", "ghs_total stays"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", f"stripe {MASK}"),
        ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc.", f"stripe {MASK}."),
        ("rk_live_51H8abcdef", MASK),
        ("id AKIAIOSFODNN7EXAMPLE used", f"id {MASK} used"),
        ("AKIAshort", "AKIAshort"),
    ],
)
def test_formats(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ALTER ROLE app PASSWORD 'hunter2secret';", f"ALTER ROLE app PASSWORD '{MASK}';"),
        ("CREATE USER x WITH ENCRYPTED PASSWORD 'md5abcdef' VALID UNTIL 'infinity'", f"CREATE USER x WITH ENCRYPTED PASSWORD '{MASK}' VALID UNTIL 'infinity'"),
        ("alter user bob with login password E'it''s s3cret' nosuperuser", f"alter user bob with login password E'{MASK}' nosuperuser"),
        ("Command was: CREATE ROLE r PASSWORD 'x''y';", f"Command was: CREATE ROLE r PASSWORD '{MASK}';"),
        ("ALTER ROLE app PASSWORD 'unclosed to the end\nnext line", f"ALTER ROLE app PASSWORD '{MASK}\nnext line"),
        ("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL"),
        ("the password policy is 'strict'", "the password policy is 'strict'"),
    ],
)
def test_sql_passwords(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("unit", ["PASSWORD '", "password ''", "password '' ", "PASSWORD E'", "password \t'a''"])
def test_sql_password_rule_stays_linear(unit):
    import time

    text = (unit * ((1 << 20) // len(unit) + 1))[: 1 << 20]
    started = time.process_time()  # CPU seconds: a quadratic rule burns minutes; a busy machine does not count
    redact(text)
    assert time.process_time() - started < 2.0, unit


def test_json_stays_json():
    text = json.dumps({"password": "hunter2", "api_key": "abc123", "name": "web"})
    assert json.loads(redact(text)) == {"password": MASK, "api_key": MASK, "name": "web"}


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dV"


def test_private_key_blocks():
    text = f"loaded\n-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\nnext line"
    assert redact(text) == f"loaded\n-----BEGIN PRIVATE KEY-----{MASK}-----END PRIVATE KEY-----\nnext line"
    rsa = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
    assert "MIIEvQ" not in redact(rsa) and "BEGIN RSA PRIVATE KEY" in redact(rsa)
    escaped = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n"}'
    assert "MIIEvQ" not in redact(escaped)
    ssh = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----"
    assert "MIIEvQ" not in redact(ssh)


def test_cut_short_private_key_masks_only_its_lines():
    text = f"-----BEGIN EC PRIVATE KEY-----\n{PEM_BODY}\nERROR disk full"
    assert redact(text) == f"-----BEGIN EC PRIVATE KEY-----{MASK}\nERROR disk full"


def test_public_material_is_left_alone():
    cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
    assert redact(cert) == cert


def test_existing_behaviour_is_kept():
    assert redact("DB_PASSWORD=hunter2 next") == f"DB_PASSWORD={MASK} next"
    assert redact("API_KEY: 'a b c', other=1") == f"API_KEY: {MASK}, other=1"
    assert redact("postgresql://app:s3cr3t@db:5432/app") == f"postgresql://app:{MASK}@db:5432/app"
    assert redact("Authorization: Bearer eyJhbGciOi.payload.sig") == f"Authorization: Bearer {MASK}"
    assert redact("using xoxb-1234-5678-AbCdEf now") == f"using {MASK} now"
    assert redact("socket xapp-1-A0-123-abc") == f"socket {MASK}"
    assert redact("http://127.0.0.1:18080/health") == "http://127.0.0.1:18080/health"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("run --password hunter2 --verbose", f"run --password {MASK} --verbose"),
        ("run --password=hunter2", f"run --password={MASK}"),
        ("--token abc --secret=x --api-key 'a b'", f"--token {MASK} --secret={MASK} --api-key {MASK}"),
        ("--token-file /run/token --no-color", "--token-file /run/token --no-color"),
        ("pwd=abc next", f"pwd={MASK} next"),
        ("passphrase: opensesame", f"passphrase: {MASK}"),
        ("Authorization: Token abc123", f"Authorization: Token {MASK}"),
        ('Authorization: Token token="abc123", realm=x', f"Authorization: Token {MASK}, realm=x"),
        ("Token token=abc123", f"Token token={MASK}"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok", f"jwt {MASK} ok"),
        ("postgresql://u:pa/ss@host/db", f"postgresql://u:{MASK}@host/db"),
        ("http://host:8080/path/x@y", "http://host:8080/path/x@y"),
        ("GET https://api/x?token=abc&page=2", f"GET https://api/x?token={MASK}&page=2"),
        ("env=DB_PASSWORD=x1 next", f"env=DB_PASSWORD={MASK} next"),
    ],
)
def test_forms_that_used_to_leak(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("name", ["api_key", "apikey", "X-API-Key", "secret_key", "AWS_SECRET_ACCESS_KEY", "db_password", "auth_token", "privateKey"])
def test_secret_names(name):
    assert redact(f"{name}=abc {name}: abc") == f"{name}={MASK} {name}: {MASK}"
    assert redact(f'{{"{name}": "abc"}}') == f'{{"{name}": "{MASK}"}}'


@pytest.mark.parametrize(
    "text", ["KeyError: 'type'", "keyboard: us", "monkey=1", "tokenizer: bert", "token_type: bearer", "sslkey=/etc/k.pem", "key_id: 42"]
)
def test_names_that_only_contain_a_secret_word_are_left_alone(text):
    assert redact(text) == text


def test_encoded_forms_of_a_registered_secret():
    secret = f"p@ss/w:rd+{uuid.uuid4().hex[:8]} x"
    register_secret(secret)
    raw = secret.encode()
    forms = [quote(secret), quote(secret, safe=""), quote_plus(secret), quote(secret, safe="").lower()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms += [encode(raw).decode(), encode(raw).decode().rstrip("=")]
    for form in forms:
        assert redact(f"sent {form} now") == f"sent {MASK} now", form
    # Inside a longer encoded blob (user:password, a JSON document), the secret's own characters go.
    blob = base64.b64encode(b'{"user": "app", "password": "' + raw + b'"}').decode()
    inner = base64.b64encode(raw).decode()[2:-4]
    assert inner[:8] not in redact(blob)


def test_logs_redacts_before_it_cuts_a_long_line():
    """The old /logs cut at MAX_LINE first: a DSN across the cut lost its '@' and showed the password."""
    password = f"Pw{uuid.uuid4().hex[:14]}"
    limit = commands.logs.MAX_LINE
    for shift in range(-40, 5):
        line = "x" * (limit + shift) + f"postgresql://app:{password}@db/app connected"
        [shown] = commands.logs._read_lines(f"before\n{line}\nafter".splitlines(), None)[1:2]
        assert not any(password[i : i + 6] in shown for i in range(len(password) - 5)), shown[-40:]
        assert shown.endswith(CUT_MARK) and len(shown) <= limit + len(CUT_MARK)


def test_logs_masks_a_private_key_line_by_line():
    raw = f"start\n-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\nnext"
    lines = commands.logs._read_lines(raw.splitlines(), None)  # as the adapters hand lines over
    assert lines == ["start", "-----BEGIN PRIVATE KEY-----", MASK, MASK, "-----END PRIVATE KEY-----", "next"]
    assert redact_lines(["a DB_PASSWORD=x", "b"]) == [f"a DB_PASSWORD={MASK}", "b"]


# --------------------------------------------------------------------------- app.yaml refuses literal secrets


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    [problem] = info.value.problems
    return str(problem)


@pytest.mark.parametrize(
    "dsn", ["postgresql://app@db/app?sslpassword=hunter2", "postgresql://app@db/app?sslmode=require&password=hunter2"]
)
def test_a_literal_password_in_a_query_string_is_refused(dsn):
    message = refused(postgres_yaml(dsn))
    assert message.startswith("bad.yaml:5: services.db.checks[0].dsn: the ") and "use ${VAR}" in message
    assert "hunter2" not in message
    parse_config(postgres_yaml(dsn.replace("hunter2", "${DB_PW}")))
    parse_config(postgres_yaml("postgresql://app@db/app?sslkey=/etc/app.key&sslmode=require"))


@pytest.mark.parametrize(
    "headers",
    ["{Authorization: Bearer hunter2}", "{Authorization: Basic aHVudGVyMg==}", "{authorization: Token hunter2}", "{X-API-Key: hunter2}"],
)
def test_a_literal_credential_header_is_refused(headers):
    message = refused(postgres_yaml("postgresql://app@db/app", headers=headers))
    assert message.startswith("bad.yaml:8: services.db.checks[1].headers: the ") and "use ${VAR}" in message
    assert "hunter2" not in message and "aHVudGVyMg" not in message


def test_credential_headers_from_the_environment_are_fine():
    for headers in ["{Authorization: 'Bearer ${T}'}", "{Authorization: '${AUTH}'}", "{Authorization: 'Token token=\"${T}\"'}", "{X-API-Key: '${K}', Accept: text/plain}"]:
        parse_config(postgres_yaml("postgresql://app@db/app", headers=headers))
    http = "services:\n  web:\n    checks:\n      - kind: http\n        url: http://h/x?page=1&token=abc\n"
    assert refused(http) == (
        "bad.yaml:5: services.web.checks[0].url: the token query parameter is written in the file; use ${VAR} and set it in the environment"
    )
    parse_config(http.replace("abc", "${TOKEN}"))


# --------------------------------------------------------------------------- 4. log records


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger(f"opsbot.test.redaction.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, stream
    log.removeHandler(handler)


def test_exception_traceback_is_redacted(captured):
    log, stream = captured
    try:
        raise ConnectionError("could not connect to postgresql://app:hunter2@db/app")
    except ConnectionError:
        log.exception("check %s failed", "database")
    output = stream.getvalue()
    assert "hunter2" not in output
    assert "ERROR" in output and "check database failed" in output
    assert "Traceback (most recent call last):" in output
    assert "test_exception_traceback_is_redacted" in output
    assert f"ConnectionError: could not connect to postgresql://app:{MASK}@db/app" in output


def test_exc_info_given_explicitly_and_stack_info(captured):
    log, stream = captured
    try:
        raise ValueError("DB_PASSWORD=hunter2")
    except ValueError as exc:
        error = exc
    log.warning("failed", exc_info=error)
    log.info("here token=xoxb-1-2-3", stack_info=True)
    output = stream.getvalue()
    assert "hunter2" not in output and "xoxb-1-2-3" not in output
    assert f"ValueError: DB_PASSWORD={MASK}" in output
    assert "Stack (most recent call last):" in output


def test_the_record_is_cleared_for_every_handler(captured):
    log, stream = captured
    second = io.StringIO()
    handler = logging.StreamHandler(second)  # no filter of its own: relies on the first handler's
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("redis://:hunter2@cache:6379/0")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    assert "hunter2" not in stream.getvalue() and "hunter2" not in second.getvalue()
    assert second.getvalue().count("Traceback") == 1


def test_plain_records_are_untouched(captured):
    log, stream = captured
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "served %d requests", (5,), None)
    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("served %d requests", (5,))
    log.info("password=%s", "hunter2")
    assert stream.getvalue() == f"INFO {log.name}: password={MASK}\n"
