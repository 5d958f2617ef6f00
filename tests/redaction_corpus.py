"""What redaction should catch, and what it must leave alone: a corpus for tests and bench/redaction.py.

Secrets: each case is a line as a log, a shell history or a config dump would show it, with the secret
values it holds. Token shapes are the ones public secret scanners document (gitleaks rules, trufflehog
and detect-secrets detectors, GitHub's secret scanning patterns); the values are synthesised here from
a seeded generator, so the repository holds no real key and no string a push-protection scanner
would stop. A case is caught when no 8 characters of its secret are left in the redacted line.

Ordinary lines: 1,000 log lines without secrets (stack traces, git SHAs, UUIDs, pod names, URLs without
credentials, IPv6 addresses and the noise around them), also seeded. Redaction must leave every one
unchanged.

    from redaction_corpus import corpus, ordinary_lines, score
"""
from __future__ import annotations

import random
import string
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64URL = ALNUM + "_-"
B64 = ALNUM + "+/"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
PUNCT = "!#$%^*()-_+=.,;~"  # what people put in passwords (no quote, no space)
WINDOW = 8


@dataclass(frozen=True)
class Case:
    category: str
    source: str  # where the shape is documented
    text: str
    secrets: tuple[str, ...]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def of(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def password(self, n: int = 16, extra: str = PUNCT) -> str:
        # Starts and ends on a letter or digit: a trailing '.' or ',' reads as punctuation in a sentence.
        return self.of(ALNUM, 2) + self.of(ALNUM + extra, n - 4) + self.of(ALNUM, 2)


# Bare tokens: (category, source, factory). Each factory returns one token of the documented shape.
def _token_shapes(g: _Gen) -> list[tuple[str, str, Callable[[], str]]]:
    return [
        ("GitLab", "gitleaks gitlab-pat", lambda: "glpat-" + g.of(B64URL, 20)),
        ("GitLab", "gitleaks gitlab-pat-routable", lambda: "glpat-" + g.of(B64URL, 40) + "." + g.of(HEX, 2) + g.of(string.ascii_lowercase + string.digits, 7)),
        ("GitLab", "gitleaks gitlab-ptt", lambda: "glptt-" + g.of(HEX, 40)),
        ("GitLab", "gitleaks gitlab-runner-authentication-token", lambda: "glrt-" + g.of(B64URL, 20)),
        ("GitLab", "gitleaks gitlab-deploy-token", lambda: "gldt-" + g.of(B64URL, 20)),
        ("GitLab", "gitleaks gitlab-rrt", lambda: "GR1348941" + g.of(B64URL, 20)),
        ("OpenAI", "gitleaks openai-api-key (project)", lambda: "sk-proj-" + g.of(B64URL, 74) + "T3BlbkFJ" + g.of(B64URL, 74)),
        ("OpenAI", "gitleaks openai-api-key (service account)", lambda: "sk-svcacct-" + g.of(B64URL, 58) + "T3BlbkFJ" + g.of(B64URL, 58)),
        ("OpenAI", "gitleaks openai-api-key (legacy)", lambda: "sk-" + g.of(ALNUM, 20) + "T3BlbkFJ" + g.of(ALNUM, 20)),
        ("Anthropic", "gitleaks anthropic-api-key", lambda: "sk-ant-api03-" + g.of(B64URL, 93) + "AA"),
        ("Anthropic", "gitleaks anthropic-admin-api-key", lambda: "sk-ant-admin01-" + g.of(B64URL, 93) + "AA"),
        ("npm", "gitleaks npm-access-token", lambda: "npm_" + g.of(ALNUM, 36)),
        ("PyPI", "gitleaks pypi-upload-token", lambda: "pypi-AgEIcHlwaS5vcmc" + g.of(B64URL, 120)),
        ("Google", "gitleaks gcp-api-key", lambda: "AIza" + g.of(B64URL, 35)),
        ("Google", "trufflehog gcpoauth client secret", lambda: "GOCSPX-" + g.of(B64URL, 28)),
        ("SendGrid", "gitleaks sendgrid-api-token", lambda: "SG." + g.of(B64URL, 22) + "." + g.of(B64URL, 43)),
        ("Telegram", "detect-secrets telegram_token", lambda: str(g.rng.randint(10**8, 10**10 - 1)) + ":AA" + g.of(B64URL, 33)),
        ("Discord", "detect-secrets discord bot token", lambda: g.rng.choice("MN") + g.of("DTQzjk", 1) + g.of(ALNUM, 6) + g.of(string.digits, 1) + g.of(ALNUM, 15) + "." + g.of(B64URL, 6) + "." + g.of(B64URL, 27)),
        ("Twilio", "gitleaks twilio-api-key", lambda: "SK" + g.of(HEX, 32)),
        ("Vault", "gitleaks vault-service-token", lambda: "hvs." + g.of(B64URL, 95)),
        ("Vault", "gitleaks vault-batch-token", lambda: "hvb." + g.of(B64URL, 140)),
        ("DigitalOcean", "gitleaks digitalocean-pat", lambda: "dop_v1_" + g.of(HEX, 64)),
        ("DigitalOcean", "gitleaks digitalocean-access-token", lambda: "doo_v1_" + g.of(HEX, 64)),
        ("age", "gitleaks age-secret-key", lambda: "AGE-SECRET-KEY-1" + g.of(BECH32, 58)),
        ("Shopify", "gitleaks shopify-access-token", lambda: "shpat_" + g.of(HEX, 32)),
        ("Shopify", "gitleaks shopify-shared-secret", lambda: "shpss_" + g.of(HEX, 32)),
        ("Databricks", "gitleaks databricks-api-token", lambda: "dapi" + g.of(HEX, 32)),
        ("Hugging Face", "gitleaks huggingface-access-token", lambda: "hf_" + g.of(string.ascii_letters, 34)),
        ("Grafana", "gitleaks grafana-service-account-token", lambda: "glsa_" + g.of(ALNUM, 32) + "_" + g.of(HEX, 8)),
        ("Grafana", "gitleaks grafana-cloud-api-token", lambda: "glc_" + g.of(B64, 60) + "=="),
        ("Sentry", "gitleaks sentry-user-token", lambda: "sntryu_" + g.of(HEX, 64)),
        ("Postman", "gitleaks postman-api-token", lambda: "PMAK-" + g.of(HEX, 24) + "-" + g.of(HEX, 34)),
        ("Pulumi", "gitleaks pulumi-api-token", lambda: "pul-" + g.of(HEX, 40)),
        ("Doppler", "gitleaks doppler-api-token", lambda: "dp.pt." + g.of(ALNUM, 43)),
        ("Linear", "gitleaks linear-api-key", lambda: "lin_api_" + g.of(ALNUM, 40)),
        ("Docker Hub", "trufflehog dockerhub personal access token", lambda: "dckr_pat_" + g.of(B64URL, 27)),
        ("Dynatrace", "gitleaks dynatrace-api-token", lambda: "dt0c01." + g.of(UPPER_ALNUM, 24) + "." + g.of(UPPER_ALNUM, 64)),
        ("PlanetScale", "gitleaks planetscale-api-token", lambda: "pscale_tkn_" + g.of(B64URL, 43)),
        ("Brevo", "gitleaks sendinblue-api-token", lambda: "xkeysib-" + g.of(HEX, 64) + "-" + g.of(ALNUM, 16)),
        ("RubyGems", "gitleaks rubygems-api-token", lambda: "rubygems_" + g.of(HEX, 48)),
        ("Fly.io", "gitleaks flyio-access-token", lambda: "fo1_" + g.of(B64URL, 43)),
        ("Notion", "gitleaks notion-api-token", lambda: "ntn_" + g.of(string.digits, 11) + g.of(ALNUM, 35)),
        ("Perplexity", "gitleaks perplexity-api-key", lambda: "pplx-" + g.of(ALNUM, 48)),
        ("Square", "gitleaks square-access-token", lambda: "sq0atp-" + g.of(B64URL, 22)),
        ("Azure", "gitleaks azure-ad-client-secret", lambda: g.of(ALNUM, 3) + "8Q~" + g.of(B64URL + "~.", 34)),
        ("Mailchimp", "gitleaks mailchimp-api-key", lambda: g.of(HEX, 32) + "-us" + str(g.rng.randint(1, 21))),
        ("Terraform Cloud", "gitleaks hashicorp-tf-api-token", lambda: g.of(ALNUM, 14) + ".atlasv1." + g.of(B64URL, 67)),
        ("Heroku", "gitleaks heroku-api-key-v2", lambda: "HRKU-AA" + g.of(B64URL, 58)),
        ("Artifactory", "gitleaks artifactory-api-key", lambda: "AKCp" + g.of(ALNUM, 69)),
        ("OpenShift", "gitleaks openshift-user-token", lambda: "sha256~" + g.of(B64URL, 43)),
        ("Alibaba", "gitleaks alibaba-access-key-id", lambda: "LTAI" + g.of(ALNUM, 20)),
        # Shapes the bot knew before this corpus (kept so the figure covers them too).
        ("Slack", "gitleaks slack-bot-token", lambda: f"xoxb-{g.of(string.digits, 12)}-{g.of(string.digits, 13)}-{g.of(ALNUM, 24)}"),
        ("GitHub", "GitHub secret scanning (ghp_)", lambda: "ghp_" + g.of(ALNUM, 36)),
        ("GitHub", "gitleaks github-fine-grained-pat", lambda: "github_pat_" + g.of(ALNUM + "_", 82)),
        ("Stripe", "gitleaks stripe-access-token", lambda: "sk_live_" + g.of(ALNUM, 24)),
        ("AWS", "gitleaks aws-access-token", lambda: "AKIA" + g.of("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        ("JWT", "gitleaks jwt", lambda: "eyJhbGciOiJIUzI1NiJ9.eyJ" + g.of(B64URL, 40) + "." + g.of(B64URL, 43)),
    ]


# Where a bare token turns up: none of these names says 'secret', so only the token's shape can tell.
_BARE_CONTEXTS = (
    "INFO deploy: pushing release with {t} to the registry",
    '{{"level": "warn", "msg": "retrying request", "value": "{t}", "attempt": 2}}',
    "ERROR client: 401 from upstream for {t}; rotating",
)


def _tokens(g: _Gen) -> Iterable[Case]:
    for category, source, make in _token_shapes(g):
        for context in _BARE_CONTEXTS:
            token = make()
            yield Case(f"token: {category}", source, context.format(t=token), (token,))


def _webhooks(g: _Gen) -> Iterable[Case]:
    path = f"T{g.of(UPPER_ALNUM, 10)}/B{g.of(UPPER_ALNUM, 10)}/{g.of(ALNUM, 24)}"
    yield Case("webhook URLs", "gitleaks slack-webhook-url", f"POST https://hooks.slack.com/services/{path} 200", (path,))
    secret = g.of(B64URL, 68)
    yield Case("webhook URLs", "trufflehog discordwebhook", f"notify: https://discord.com/api/webhooks/{g.of(string.digits, 19)}/{secret} sent", (secret,))
    token = f"{g.rng.randint(10**8, 10**10 - 1)}:AA{g.of(B64URL, 33)}"
    yield Case("webhook URLs", "Telegram Bot API (bot<token> in the path)", f"GET https://api.telegram.org/bot{token}/getMe 200", (token,))


CURL_FORMS = (
    "curl -u deploy:{p} https://registry.example.com/v2/_catalog",
    "curl -sS --user admin:{p} -X POST https://jenkins.example.com/job/deploy/build",
    'curl --user="ci-bot:{p}" https://nexus.example.com/service/rest/v1/status',
    "curl -fsSL \\\n  -u backup:{p} \\\n  https://files.example.com/upload",
    "+ curl -uadmin:{p} http://10.0.3.17:15672/api/overview",
    "$ curl -k -u 'elastic:{p}' https://es.example.com:9200/_cluster/health",
)
OPERATOR_FORMS = (
    'token := "{p}"',
    '\tapiKey := "{p}"',
    'key => "{p}",',
    "  :password => '{p}',",
    '{{"client_secret" => "{p}", "scope" => "read"}}',
    "ENV['API_TOKEN'] = '{p}'",
    'os.environ["DB_PASSWORD"] = "{p}"',
    "$config['secret_key'] = '{p}';",
)
SEPARATOR_FORMS = (
    "password={p} next=1",
    "DB_PASSWORD={p}",
    "worker: starting with --password={p} --verbose",
    "api_key: {p}",
    "login ok secret={p}",
    'env: ["SMTP_PASSWORD={p}", "SMTP_USER=mailer"]',
)


def _filled(category: str, source: str, forms: tuple[str, ...], secret: Callable[[], str]) -> Iterable[Case]:
    for form in forms:
        value = secret()
        yield Case(category, source, form.format(p=value), (value,))


def _with_separators(g: _Gen) -> str:
    return g.of(ALNUM, 5) + g.rng.choice(",;") + g.of(ALNUM, 4) + ";" + g.of(ALNUM, 4) + "," + g.of(ALNUM, 3)


def _url_passwords(g: _Gen) -> Iterable[Case]:
    lengths = (300, 700, 1500)
    for length in lengths:
        password = g.of(ALNUM + "%-._~", length - 2) + g.of(ALNUM, 2)
        yield Case("URL passwords", "RFC 3986 userinfo (long: an RDS IAM token)", f"connecting to postgresql://app:{password}@db.example.com:5432/app", (password,))
    forms = (
        "mysql://root:{p}@mysql:3306/shop",
        "DATABASE_URL=postgres://app:{p}@db/app?sslmode=require",
        "amqp://guest:{p}@rabbit:5672/%2F",
        "mongodb+srv://svc:{p}@cluster0.example.net/admin",
        "redis://:{p}@cache:6379/0",
    )
    for form in forms:
        for extra in ("@", ":", "@:/"):
            password = g.password(8) + extra + g.password(8)
            yield Case("URL passwords", "RFC 3986 userinfo (with @ or :)", form.format(p=password), (password,))


def _known(g: _Gen) -> Iterable[Case]:
    """Forms the bot caught before this corpus, so the figure is not only about what is new."""
    p = g.password
    yield Case("known forms", "key=value", f"DB_PASSWORD={(s := p())} next", (s,))
    yield Case("known forms", "JSON", f'{{"password": "{(s := p())}", "user": "app"}}', (s,))
    yield Case("known forms", "Authorization", f"Authorization: Bearer {(s := g.of(B64URL, 40))}", (s,))
    yield Case("known forms", "Authorization", f"Authorization: Token {(s := g.of(HEX, 40))}", (s,))
    yield Case("known forms", "flags", f"pg_dump --password {(s := p())} app", (s,))
    yield Case("known forms", "SQL", f"ALTER ROLE app PASSWORD '{(s := p())}';", (s,))
    yield Case("known forms", "query string", f"GET /callback?code=1&access_token={(s := g.of(ALNUM, 32))}&state=x", (s,))
    yield Case("known forms", "Azure connection string", f"DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey={(s := g.of(B64, 86))}==;EndpointSuffix=core.windows.net", (s,))
    yield Case("known forms", "Azure SAS", f"PUT https://prodlogs.blob.core.windows.net/c/x.gz?sv=2022-11-02&ss=b&sp=rw&sig={(s := g.of(ALNUM, 40))}%3D 201", (s,))
    yield Case("known forms", "AWS presigned", f"GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={(s := g.of(HEX, 64))}", (s,))


def _shapeless(g: _Gen) -> Iterable[Case]:
    """Secrets with no shape of their own, bare: nothing in the line says what they are. Kept in the
    corpus (and missed) so the recall figure does not flatter: a scanner needs a name or a prefix."""
    yield Case("no shape, no name", "gitleaks twilio auth token (32 hex, context only)", f"sms: sent with {(s := g.of(HEX, 32))} ok", (s,))
    yield Case("no shape, no name", "gitleaks heroku-api-key (a UUID, context only)", f"heroku: {(s := '-'.join(g.of(HEX, n) for n in (8, 4, 4, 4, 12)))} used", (s,))
    yield Case("no shape, no name", "gitleaks vault-service-token (legacy s.)", f"vault: login with s.{(s := g.of(ALNUM, 24))}", (s,))


def corpus(seed: int = 16) -> list[Case]:
    g = _Gen(seed)
    return [
        *_tokens(g),
        *_webhooks(g),
        *_filled("curl -u user:password", "gitleaks curl-auth-user", CURL_FORMS, g.password),
        *_filled("token := / key => / [key] =", "gitleaks generic-api-key (operators := => =)", OPERATOR_FORMS, g.password),
        *_filled("values with , or ;", "values as people write them", SEPARATOR_FORMS, lambda: _with_separators(g)),
        *_url_passwords(g),
        *_known(g),
        *_shapeless(g),
    ]


# Empty values must stay visibly empty: these lines are unchanged by redaction.
EMPTY_VALUES = ('{"password": ""}', "{'secret': ''}", 'password="" user=app', "DB_PASSWORD=''", 'token := ""')


def leaked(case: Case, redacted: str) -> bool:
    """Any WINDOW characters of a secret left in the redacted line."""
    for secret in case.secrets:
        width = min(WINDOW, len(secret))
        if any(secret[i : i + width] in redacted for i in range(len(secret) - width + 1)):
            return True
    return False


def score(redact: Callable[[str], str], cases: list[Case]) -> dict[str, tuple[int, int]]:
    """category -> (caught, cases)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        entry = out[case.category]
        entry[0] += not leaked(case, redact(case.text))
        entry[1] += 1
    return {category: (caught, total) for category, (caught, total) in out.items()}


# --------------------------------------------------------------------------- ordinary lines


def ordinary_lines(count: int = 1000, seed: int = 1000) -> list[str]:
    """Log lines with no secret in them, of the kinds an incident channel sees most."""
    rng = random.Random(seed)
    g = _Gen(seed + 1)

    def sha(n: int = 40) -> str:
        return g.of(HEX, n)

    def uuid() -> str:
        return "-".join(g.of(HEX, n) for n in (8, 4, 4, 4, 12))

    def pod() -> str:
        base = rng.choice(["api", "web", "worker", "billing-api", "checkout", "sk-router", "notifier", "ingest-gateway"])
        return f"{base}-{g.of('bcdfghjklmnpqrstvwxz2456789', 10)}-{g.of('bcdfghjklmnpqrstvwxz2456789', 5)}"

    def ipv6() -> str:
        groups = [g.of(HEX, rng.randint(1, 4)) for _ in range(8)]
        form = rng.randint(0, 3)
        if form == 0:
            return ":".join(groups)
        if form == 1:
            return f"2001:db8:{groups[2]}::{groups[6]}:{groups[7]}"
        if form == 2:
            return f"fe80::{groups[5]}:{groups[6]}:{groups[7]}%eth0"
        return f"::ffff:10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def ts() -> str:
        return f"2026-12-0{rng.randint(1, 6)}T{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}.{rng.randint(0, 999):03}Z"

    host = lambda: rng.choice(["api.example.com", "grafana.example.com", "10.0.3.17:8080", "registry.example.com", "login.example.com", "db:5432"])  # noqa: E731
    path = lambda: rng.choice(["/v1/orders", "/healthz", "/api/v2/users/42/sessions", "/d/abc123/overview", "/oauth/authorize", "/metrics"])  # noqa: E731
    templates: list[Callable[[], str]] = [
        # Python tracebacks
        lambda: "Traceback (most recent call last):",
        lambda: f'  File "/app/{rng.choice(["service", "bot", "worker"])}/{rng.choice(["handlers", "client", "tasks"])}.py", line {rng.randint(10, 900)}, in {rng.choice(["handle_request", "fetch", "_retry", "run"])}',
        lambda: f"    response = await session.get(url, timeout={rng.randint(1, 30)})",
        lambda: rng.choice(["KeyError: 'token_type'", "KeyError: 'password'", "AttributeError: 'NoneType' object has no attribute 'secret_ref'", "ValueError: invalid literal for int() with base 10: 'abc'"]),
        lambda: f"aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host db:5432 ssl:default [Connect call failed ('{ipv6()}', 5432, 0, 0)]",
        lambda: f"asyncpg.exceptions.InvalidPasswordError: password authentication failed for user \"app\" (pid {rng.randint(100, 99999)})",
        # Java and Go
        lambda: f"\tat com.example.{rng.choice(['billing', 'auth', 'search'])}.{rng.choice(['InvoiceService', 'TokenValidator', 'MonitoringServiceHandler'])}.{rng.choice(['render', 'handle', 'validate'])}({rng.choice(['InvoiceService', 'TokenValidator'])}.java:{rng.randint(10, 500)})",
        lambda: rng.choice(["Caused by: java.net.SocketTimeoutException: Read timed out", f"\t... {rng.randint(3, 80)} more", "Exception in thread \"main\" java.lang.IllegalStateException: keystore not loaded"]),
        lambda: f"goroutine {rng.randint(1, 900)} [running]:",
        lambda: f"main.(*Server).handle(0xc000{g.of(HEX, 6)}, {{0x{g.of(HEX, 6)}, 0x{rng.randint(1, 99):x}}})",
        lambda: f"\t/src/internal/{rng.choice(['server', 'auth', 'store'])}/{rng.choice(['http', 'keys', 'token'])}.go:{rng.randint(10, 900)} +0x{g.of(HEX, 3)}",
        # git
        lambda: f"commit {sha()}",
        lambda: f"deployed {sha(7)} to production (previous {sha(7)}) by @{rng.choice(['ana', 'bo', 'chen'])}",
        lambda: f"HEAD is now at {sha(7)} {rng.choice(['Fix flaky test', 'Bump redis to 7.2', 'Rotate keys on schedule'])}",
        lambda: f"Merge: {sha(7)} {sha(7)}",
        lambda: f"remote: Resolving deltas: 100% ({rng.randint(1, 900)}/{rng.randint(900, 999)}), done. {sha(7)}..{sha(7)}  main -> main",
        # UUIDs and trace ids
        lambda: f"{ts()} INFO request_id={uuid()} method=GET path={path()} status={rng.choice([200, 201, 204, 404])} duration_ms={rng.randint(1, 900)}",
        lambda: f"trace_id={sha(32)} span_id={sha(16)} service=checkout",
        lambda: f"Job {uuid()} finished in {rng.random() * 9:.2f}s",
        lambda: f"idempotency_key={uuid()} cache_key=user:{rng.randint(1, 9999)}:profile token_type=bearer",
        # Kubernetes
        lambda: f"Pod prod/{pod()}: Back-off restarting failed container",
        lambda: f"Successfully assigned default/{pod()} to ip-10-0-{rng.randint(0, 255)}-{rng.randint(1, 254)}.ec2.internal",
        lambda: f"Scaled up replica set {pod().rsplit('-', 1)[0]} to {rng.randint(1, 9)}",
        lambda: f"kubelet: Liveness probe failed for {pod()}: HTTP probe failed with statuscode: 503",
        lambda: f"Pulling image \"registry.example.com/app:1.{rng.randint(0, 9)}.{rng.randint(0, 9)}@sha256:{sha(64)}\"",
        # URLs without credentials
        lambda: f"GET https://{host()}{path()}?page={rng.randint(1, 9)}&limit=50 {rng.choice([200, 304])} {rng.randint(1, 900)}ms",
        lambda: f"upstream: http://{host()}{path()}",
        lambda: rng.choice(["connecting to postgresql://app@db:5432/app", "cache at redis://cache:6379/0", "broker amqp://rabbit:5672/%2F", "jdbc:postgresql://db:5432/app?ssl=true"]),
        lambda: f"Location: https://login.example.com/oauth/authorize?client_id=web&response_type=code&state={sha(16)}",
        lambda: f"webhook delivered to https://hooks.example.com/ci/{uuid()} in {rng.randint(1, 900)}ms",
        lambda: f"curl -sS -o /dev/null -w '%{{http_code}}' https://{host()}{path()}",
        # IPv6
        lambda: f"client {ipv6()} connected",
        lambda: f"listening on [::]:{rng.choice([80, 443, 8080, 9090])} and {ipv6()}",
        lambda: f"GET http://[{ipv6().split('%')[0]}]:{rng.choice([80, 8443])}/metrics 200",
        lambda: f"[{ipv6().split('%')[0]}]:{rng.randint(1024, 65535)} - - [06/Dec/2026:21:30:00 +0000] \"GET {path()} HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\"",
        lambda: f"Accepted publickey for deploy from {ipv6()} port {rng.randint(1024, 65535)} ssh2: ED25519 SHA256:{g.of(B64, 43)}",
        # noise around them
        lambda: f"docker run -u {rng.randint(0, 2000)}:{rng.randint(0, 2000)} --rm alpine id",
        lambda: f"arn:aws:iam::{g.of(string.digits, 12)}:role/deploy assumed at {ts()}",
        lambda: f"etag \"{sha(32)}\" size={rng.randint(1, 10**7)} keyboard=us monkey=1 key_id={rng.randint(1, 99)}",
        lambda: f"{ts()} WARN disk /var/lib/docker at {rng.randint(80, 99)}% on node-{rng.randint(1, 9)}",
    ]
    return [rng.choice(templates)() for _ in range(count)]
