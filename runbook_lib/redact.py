"""Redaction applied to everything the runbook writes (evidence, logs, reports, errors), and the
scan that proves it worked.

Three layers find secrets in text; ``text`` masks what they find, ``scan`` reports it:

1. values registered at run time (a database password, a secret value read for remediation),
   masked wherever they appear, in plain, URL-encoded and base64 form (shorter than 4
   characters: only as a whole token, so a 3-character password is masked without masking
   every word that contains its letters);
2. credential *shapes*: a URL's userinfo (a password may hold ``/``), ``NAME=value`` where the
   name says secret (``PGPASSWORD``, ``DB_PASS``, ``STRIPE_SK``, ``?access_token=``, libpq
   ``password='…'``), JSON/Python-dict keys (``{"password": …}``), credential headers
   (``Authorization: Basic …``, ``X-API-Key: …``), well-known token prefixes (``sk-…``,
   ``ghp_…``, ``ya29.…``, ``AIza…``, ``xoxb-…``) and PEM private keys;
3. the detectors of ``detect-secrets`` (Yelp's maintained secret scanner): its regex plugins
   (AWS, Stripe, OpenAI, Slack, JWT, Twilio, SendGrid, npm, PyPI, …), run on the text itself.
   Its entropy and keyword plugins are left out on purpose: hashes, plan ids and secret *names*
   (``secretKeyRef.secret``) are high-entropy or keyword-adjacent and the checks need them.

Structured data (``data``) additionally masks values by key name and Cloud Run/flag style
``{"name": "DB_PASS", "value": …}`` pairs.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator
from urllib.parse import quote

MASK = "***REDACTED***"

# --- names that say "secret" ----------------------------------------------------------------------

_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential", "privatekey",
                 "accesskey", "secretkey", "authkey", "clientsecret")
_SECRET_TOKENS = {"pass", "pwd", "pw", "sk", "pat", "otp", "cookie", "sessionid", "signature", "sig", "hmac",
                  "bearer", "authorization"}
# "key" alone is a lookup key (probe_key, cache_key) unless a word before it makes it a credential
_KEY_KINDS = {"api", "secret", "private", "access", "signing", "encryption", "master", "client", "service",
              "account", "auth", "stripe", "license", "app", "db", "webhook", "hmac", "x", "ssh", "gpg", "jwt",
              "openai", "anthropic", "aws", "gcp", "google", "sendgrid", "mailgun", "twilio", "slack", "deploy"}
# a last word that says the value is *about* a secret, not the secret (password_env, key_file, TOKEN_URL)
_ABOUT_SECRET = {"env", "var", "file", "files", "path", "dir", "name", "names", "id", "ids", "ref", "refs",
                 "version", "versions", "length", "len", "type", "kind", "hint", "policy", "count", "url",
                 "uri", "endpoint", "host", "port", "expiry", "expires", "expire", "ttl", "days", "required",
                 "enabled", "set", "format", "field", "header", "source", "manager", "rotation", "values"}
_NOT_SECRET = {"public", "page", "secretmanager"}  # PUBLIC_KEY, nextPageToken, the API's name


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_name(name: str) -> bool:
    """True when a variable/key/header name says its value is a credential.

    ``DB_PASS``, ``STRIPE_SK``, ``PGPASSWORD``, ``OPENAI_API_KEY``, ``access_token``, ``X-API-Key``;
    not ``password_env`` (names a variable), ``TOKEN_URL``, ``PUBLIC_KEY`` or ``nextPageToken``.
    """
    words = _words(name)
    if not words or words[-1] in _ABOUT_SECRET or _NOT_SECRET & set(words):
        return False
    joined = "".join(words)
    keyed = words == ["key"] or any(w == "key" and i and words[i - 1] in _KEY_KINDS for i, w in enumerate(words))
    return keyed or any(w in _SECRET_TOKENS for w in words) or any(w in joined for w in _SECRET_WORDS)


# --- findings -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """Where a secret sits in a text (``start``/``end`` of the value only) and what found it."""

    kind: str
    start: int
    end: int


_VALUE = (r"""(?P<secret>\\"(?:(?!\\")[^\n])*\\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|"""
          r"""[^\s&;,'"\\<>)\]}]+)""")  # \"json-escaped\", 'quoted', "quoted", or a bare word
_SHAPES: list[tuple[str, re.Pattern[str], bool]] = [
    # scheme://user:password@host; the password may hold '/' (and '@': up to the token's last '@')
    ("url userinfo", re.compile(
        r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/\s@"'<>]*:(?P<secret>[^\s"'<>]+)@(?=[^\s@"'<>]*(?:[\s"'<>]|$))"""),
     False),
    # NAME=value, NAME = 'quoted value', ?access_token=…, password='…' (libpq), --api-key=…
    ("secret assignment", re.compile(r"(?<![A-Za-z0-9_\-])(?P<name>[A-Za-z][A-Za-z0-9_\-]*)\s*=\s*" + _VALUE), True),
    # {"password": "…"}, {'DB_PASS': '…'}, "Authorization": "Basic …"
    ("secret key", re.compile(
        r"""(?P<q>["'])(?P<name>[A-Za-z0-9_\-.]+)(?P=q)\s*:\s*(?P<q2>["'])(?:(?:basic|bearer|token)\s+)?"""
        r"""(?P<secret>(?:(?!(?P=q2))[^\\\n]|\\.)+)(?P=q2)""", re.IGNORECASE), True),
    # {"name": "DB_PASS", "value": "…"} written out as text (a dict printed in a notebook)
    ("secret name/value", re.compile(
        r"""(?P<q>["'])name(?P=q)\s*:\s*(?P=q)(?P<name>[^"'\n]+)(?P=q)\s*,\s*(?P=q)value(?P=q)\s*:\s*"""
        r"""(?P=q)(?P<secret>(?:(?!(?P=q))[^\\\n]|\\.)+)(?P=q)"""), True),
    # Authorization: Basic …, X-API-Key: …, Cookie: …
    ("credential header", re.compile(
        r"""(?i)(?<![A-Za-z0-9\-])(?:proxy-)?(?:authorization|x-api-key|api-key|apikey|x-auth-token|x-access-token|"""
        r"""x-goog-api-key|private-token|x-amz-security-token|cookie|set-cookie)["']?\s*:\s*["']?"""
        r"""(?:(?:basic|bearer|token|digest|negotiate|bot)\s+)?(?P<secret>[^\s"',;]+)"""), False),
    ("bearer token", re.compile(r"(?i)\b(?:bearer|basic|token)\s+(?P<secret>[A-Za-z0-9._~+/\-]{8,}=*)"), False),
    ("api key prefix", re.compile(
        r"(?<![A-Za-z0-9])(?P<secret>(?:sk|rk|pk)[-_](?:live_|test_|proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{16,})"), False),
    ("token prefix", re.compile(
        r"(?<![A-Za-z0-9])(?P<secret>gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}"
        r"|ya29\.[A-Za-z0-9._\-]{10,}|AIza[0-9A-Za-z_\-]{30,}|xox[abposr]-[A-Za-z0-9\-]{10,}|npm_[A-Za-z0-9]{30,}"
        r"|pypi-[A-Za-z0-9_\-]{50,})"), False),
    ("private key", re.compile(
        r"(?P<secret>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.|\n)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)"),
     False),
]

_registered: set[str] = set()


def register(value: str | None) -> None:
    """Mask this exact value from now on, wherever it appears (any length; see the module doc)."""
    if value and value not in _registered:  # (a probe registers its password once per sample)
        _registered.add(value)
        _registered_patterns.cache_clear()


@lru_cache(maxsize=1)
def _registered_patterns() -> tuple[re.Pattern[str], ...]:
    forms: set[str] = set()
    short: set[str] = set()
    for value in _registered:
        if len(value) < 4:
            short.add(value)
            continue
        forms |= {value, quote(value, safe=""), base64.b64encode(value.encode()).decode().rstrip("=")}
    out = []
    if forms:
        out.append(re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))))
    if short:
        alts = "|".join(re.escape(v) for v in sorted(short, key=len, reverse=True))
        out.append(re.compile(rf"(?<![A-Za-z0-9])(?:{alts})(?![A-Za-z0-9])"))
    return tuple(out)


@lru_cache(maxsize=1)
def _detectors() -> tuple[Any, ...]:
    """detect-secrets' regex plugins, minus the ones that flag what is not a credential here."""
    import importlib
    import inspect
    import pkgutil

    import detect_secrets.plugins as plugins
    from detect_secrets.plugins.base import RegexBasedDetector

    # A public IP is an address, not a credential (the load balancer's IP is evidence). The IBM,
    # Cloudant and SoftLayer plugins are keyword assignments (``cloudant_password = …``) that the
    # NAME=value shape above already covers, at a fifth of the cost on a notebook's text.
    skip = {"IPPublicDetector", "CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector"}
    found = []
    for info in pkgutil.iter_modules(plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == module.__name__ and issubclass(cls, RegexBasedDetector)
                    and not inspect.isabstract(cls) and name not in skip):
                found.append(cls())
    return tuple(sorted(found, key=lambda d: type(d).__name__))


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/=")


# what stands in for a value in help texts and templates: VALUE, <plan id>, $PGPASSWORD, ${TOKEN}, null
_PLACEHOLDER = re.compile(r"""(?i)^(?:value|\.\.\.|…|x+|none|null|true|false|<[^<>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)$""")


def warm() -> None:
    """Load the detectors now (importing detect-secrets takes ~0.7 s): call it before anything is
    timed, so the first redaction never stalls an event loop in the middle of a probe wave."""
    _detectors()


def _masked(value: str) -> bool:
    bare = value.strip("'\"\\")
    return MASK in value or set(bare) <= {"*"} or bool(_PLACEHOLDER.match(bare))


def find(s: str) -> list[Finding]:
    """Every secret in ``s`` (already masked values do not count), in order of position."""
    found: list[Finding] = []
    for pattern in _registered_patterns():
        found += [Finding("registered value", m.start(), m.end()) for m in pattern.finditer(s)]
    for kind, pattern, by_name in _SHAPES:
        for m in pattern.finditer(s):
            if by_name and not (_secret_key(m.group("name")) if kind == "secret key" else secret_name(m.group("name"))):
                continue
            value = m.group("secret")
            if not _masked(value):
                found.append(Finding(kind, m.start("secret"), m.end("secret")))
                bare = value.strip("'\"\\")
                if len(bare) >= 6:  # a credential found once is masked wherever else it appears
                    at = s.find(bare)
                    while at != -1:
                        found.append(Finding(kind, at, at + len(bare)))
                        at = s.find(bare, at + len(bare))
    for detector in _detectors():
        for value in set(detector.analyze_string(s)):
            if len(value) < 8 or _masked(value):
                continue  # a captured fragment (a prefix group), not a credential
            start = s.find(value)
            while start != -1:
                # a plugin may capture part of a token (JWT: header.payload): mask the whole token
                end = start + len(value)
                while end < len(s) and s[end] in _TOKEN_CHARS:
                    end += 1
                found.append(Finding(f"detect-secrets: {detector.secret_type}", start, end))
                start = s.find(value, end)
    return sorted(found, key=lambda f: (f.start, -f.end))


def text(s: str) -> str:
    """``s`` with every secret that ``find`` sees replaced by ``MASK``."""
    if not s:
        return s
    out, pos = [], 0
    for f in _merged(find(s)):
        out += [s[pos:f.start], MASK]
        pos = f.end
    out.append(s[pos:])
    return "".join(out)


def _merged(findings: list[Finding]) -> Iterator[Finding]:
    current: Finding | None = None
    for f in findings:
        if current is not None and f.start <= current.end:
            current = Finding(current.kind, current.start, max(current.end, f.end))
            continue
        if current is not None:
            yield current
        current = f
    if current is not None:
        yield current


# --- structured data ------------------------------------------------------------------------------

_SECRET_KEYS = re.compile(r"(?i)^(data)$")  # a Secret Manager payload ({"payload": {"data": base64}})
_NAME_IS_NOT_SECRET = {"secret", "key"}  # secretKeyRef.secret names a secret; "key" is an evidence key


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.match(key)) or (key.lower() not in _NAME_IS_NOT_SECRET and secret_name(key))


def data(obj: Any, _key: str = "") -> Any:
    """Redact a JSON-like structure: secret-named keys are masked, strings are scrubbed."""
    if isinstance(obj, dict):
        named_secret = isinstance(obj.get("name"), str) and secret_name(obj["name"])
        out = {}
        for k, v in obj.items():
            if _secret_key(str(k)) and isinstance(v, (str, bytes)) and v:
                out[k] = MASK
            elif named_secret and k == "value" and isinstance(v, str) and v:
                out[k] = MASK
            else:
                out[k] = data(v, str(k))
        return out
    if isinstance(obj, list):
        return [data(v, _key) for v in obj]
    if isinstance(obj, str):
        return text(obj)
    return obj


# --- the scan before a run is COMPLETE ------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    """A secret found in a file: where and what kind, never the value."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def scan_text(s: str, path: str) -> list[Hit]:
    hits = []
    for f in _merged(find(s)):
        hits.append(Hit(path, s.count("\n", 0, f.start) + 1, f.kind))
    return hits
