"""Redaction recall (issue 14, item 16): what leaked before, the corpus figure, and ordinary lines left alone.

The corpus and the ordinary lines are tests/redaction_corpus.py; bench/redaction.py prints the same
figures per category. Time budgets for the new rules: test_redaction_budget.py.
"""
from __future__ import annotations

import uuid

import pytest
from redaction_corpus import EMPTY_VALUES, corpus, leaked, ordinary_lines, score

from bot.redaction import CONTEXT, MASK, redact, redact_cut, redact_lines
from bot.redaction_rules import PASSWORD_MAX, is_secret_name

CASES = corpus()


def test_corpus_recall_is_at_least_95_percent():
    scores = score(redact, CASES)
    caught = sum(c for c, _ in scores.values())
    assert caught / len(CASES) >= 0.95, {k: v for k, v in scores.items() if v[0] < v[1]}


@pytest.mark.parametrize("category", sorted({c.category for c in CASES} - {"no shape, no name"}))
def test_every_category_with_a_shape_or_a_name_is_caught_whole(category):
    missed = [c.text for c in CASES if c.category == category and leaked(c, redact(c.text))]
    assert not missed, missed[:3]


def test_a_thousand_ordinary_lines_are_left_unchanged():
    lines = ordinary_lines()
    assert len(lines) == 1000
    changed = [(line, redact(line)) for line in lines if redact(line) != line]
    assert not changed, changed[:5]
    assert redact_lines(lines, 2000) == lines


@pytest.mark.parametrize("text", EMPTY_VALUES)
def test_empty_values_stay_visibly_empty(text):
    assert redact(text) == text


# --------------------------------------------------------------------------- the forms that leaked

LEAKED = [
    # curl -u user:password
    ("curl -u admin:s3cr3t-pw https://x", f"curl -u admin:{MASK} https://x"),
    ("curl -uadmin:s3cr3t-pw https://x", f"curl -uadmin:{MASK} https://x"),
    ("curl --user admin:s3cr3t-pw https://x", f"curl --user admin:{MASK} https://x"),
    ('curl --user="ci:pw with space" x', f'curl --user="ci:{MASK}" x'),
    ("curl -k -u 'elastic:pw9' https://es:9200", f"curl -k -u 'elastic:{MASK}' https://es:9200"),
    ("curl -sS \\\n  -u backup:pw-2 \\\n  https://x", f"curl -sS \\\n  -u backup:{MASK} \\\n  https://x"),
    # := and => and subscripts
    ('token := "abc123xyz"', f"token := {MASK}"),
    ('\tapiKey := "abc123xyz"', f"\tapiKey := {MASK}"),
    ('key => "abc123xyz",', f"key => {MASK},"),
    (":password => 'abc123xyz',", f":password => {MASK},"),
    ('{"client_secret" => "abc123xyz", "scope" => "read"}', f'{{"client_secret" => "{MASK}", "scope" => "read"}}'),
    ("ENV['API_TOKEN'] = 'abc123xyz'", f"ENV['API_TOKEN'] = '{MASK}'"),
    ('os.environ["DB_PASSWORD"] = "abc123xyz"', f'os.environ["DB_PASSWORD"] = "{MASK}"'),
    # values holding , and ; are masked whole; a quoted value ends at its quote
    ("password=abc,def;ghi", f"password={MASK}"),
    ("password=abc,def;ghi next=1", f"password={MASK} next=1"),
    ("DB_PASSWORD=p;w,d!x", f"DB_PASSWORD={MASK}"),
    ("--password=a,b;c --verbose", f"--password={MASK} --verbose"),
    ("api_key: k;e,y", f"api_key: {MASK}"),
    ("API_KEY: 'a, b; c', other=1", f"API_KEY: {MASK}, other=1"),
    ('{"token": "a,b;c", "n": 1}', f'{{"token": "{MASK}", "n": 1}}'),
    # secrets in addresses
    ("GET https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0/getMe", f"GET https://api.telegram.org/bot{MASK}/getMe"),
    ("POST https://hooks.slack.com/services/T0001/B0001/abcdefghijklmnopqrstuvwx 200", f"POST https://hooks.slack.com/services/{MASK} 200"),
    ("PUT https://a.blob.core.windows.net/c/x?sv=2022-11-02&sig=abc%2Fdef%3D&se=1", f"PUT https://a.blob.core.windows.net/c/x?sv=2022-11-02&sig={MASK}&se=1"),
    ("GET /k?X-Amz-Signature=0123abcd&X-Amz-Date=1", f"GET /k?X-Amz-Signature={MASK}&X-Amz-Date=1"),
]


@pytest.mark.parametrize("text, expected", LEAKED)
def test_forms_that_leaked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "curl -u deploy https://x",  # curl asks for the password
        "docker run -u 1000:1000 alpine id",  # a uid:gid, and no curl on the line
        "curl --user-agent 'a:b' https://x",
        "http://host:8080/path/x@y",
        "http://[2001:db8::1]:8080/users/bob@example.com",
        "ssh://git@github.com:22/org/repo.git",
        "https://example.com:8443/a:b@c",
        "sk-learn and sk-router-7d9f8b6c5d-x2k4p restarted",  # sk- words, pod names
        "at io.example.MonitoringServiceHandler.handle(MonitoringServiceHandler.java:61)",
        "arn:aws:iam::123456789012:role/deploy",
        "etag d41d8cd98f00b204e9800998ecf8427e-user",
        "xglpat-" + "a" * 20,  # a prefix glued to a word is not a token's start
        "sha256:" + "ab" * 32,
        'asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "app"',
    ],
)
def test_lookalikes_are_left_alone(text):
    assert redact(text) == text


@pytest.mark.parametrize("length", [257, 300, 1000, PASSWORD_MAX - 1])
def test_long_url_passwords(length):
    password = ("Ab9%-._~" * length)[:length]
    assert redact(f"postgresql://app:{password}@db:5432/app ok") == f"postgresql://app:{MASK}@db:5432/app ok"


@pytest.mark.parametrize("password", ["p@ss", "p:ss", "p@s:s/x", "a@b@c", "::@@", "8080"])
def test_url_passwords_holding_at_and_colon(password):
    secret = f"{password}{uuid.uuid4().hex[:8]}"
    for url in (f"mysql://root:{secret}@mysql:3306/shop", f"redis://:{secret}@cache:6379/0", f"amqp://u:{secret}@rabbit/%2F"):
        assert redact(f"connect {url} now") == f"connect {url.replace(secret, MASK)} now"


def test_a_long_url_password_across_a_cut_is_masked_whole():
    password = uuid.uuid4().hex * 40  # 1,280 characters: longer than the old 1,024 of context
    text = f"{'x ' * 600}postgresql://app:{password}@db/app and more"
    for limit in (1250, 1500, 2400):
        out = redact_cut(text, limit)
        assert not any(password[i : i + 8] in out for i in range(0, len(password) - 8, 7)), (limit, out[-60:])
    assert CONTEXT > 2 * len("://") + 256 + PASSWORD_MAX


@pytest.mark.parametrize(
    "name, secret",
    [
        ("InvalidPasswordError", False), ("PasswordError", False), ("cache_key", False), ("idempotency_key", False),
        ("public_key", False), ("sort_key", False), ("AccountKey", True), ("signing_key", True), ("api_key", True),
        ("SharedAccessKey", True), ("private_key", True),
    ],
)
def test_secret_names_that_identify_rather_than_unlock(name, secret):
    assert is_secret_name(name) is secret


def test_a_curl_command_continued_over_log_lines():
    lines = ["+ curl -sS \\", "    -u deploy:pw-9x \\", "    https://x", "docker run -u 1000:1000 alpine id"]
    assert redact_lines(lines) == ["+ curl -sS \\", f"    -u deploy:{MASK} \\", "    https://x", lines[3]]
