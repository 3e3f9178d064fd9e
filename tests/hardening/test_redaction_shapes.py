"""Redaction by shape (issue 11, item 1): the twelve credential shapes that passed through the old
pattern list, key names such as DB_PASS and STRIPE_SK, registered values shorter than 4
characters, and a property-based generator of credential shapes. After masking, the scan finds
nothing (so the scan before COMPLETE and the writers agree), and ordinary text is left alone.
"""
from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib import redact

# (text, the secret inside it): the shapes of issue 11, then more that real logs carry
SHAPES = [
    ("host=10.0.0.3 user=app password='pa ss w0rd' sslmode=require", "pa ss w0rd"),                # quoted libpq
    ('dbname=app password="dq-Secret-9" host=db', "dq-Secret-9"),
    ("GET https://api.example.com/v1/me?access_token=AbCdEf123456&x=1", "AbCdEf123456"),          # ?access_token=
    ('config: {"password": "json-Pw-77"}', "json-Pw-77"),                                         # {"password": …}
    ("{'password': 'py-dict-pw'}", "py-dict-pw"),
    ("X-API-Key: 9f8e7d6c5b4a39281706", "9f8e7d6c5b4a39281706"),                                 # X-API-Key
    ("using key sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOp", "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOp"),      # sk-… keys
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),                               # Basic auth
    ("postgresql://app:pa/ss@wo/rd@10.103.0.3:5432/app", "pa/ss@wo/rd"),                         # '/' in a DSN
    ("PGPASSWORD=pg-env-secret psql -h 10.0.0.3", "pg-env-secret"),                               # PGPASSWORD=
    ("DB_PASS=db-pass-value", "db-pass-value"),                                                   # DB_PASS
    ("STRIPE_SK=zz-stripe-value", "zz-stripe-value"),                                             # STRIPE_SK
    ("export OPENAI_API_KEY='openai-like-value'", "openai-like-value"),
    ("redis://:r3dis-pass@10.103.1.4:6379/0", "r3dis-pass"),
    ("AWS key AKIAIOSFODNN7EXAMPLE in a log", "AKIAIOSFODNN7EXAMPLE"),                            # detect-secrets: AWS
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-123456789012"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7BFUAk\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAq7BFUAk"),
    ('"Authorization": "Bearer ya29.a0AfH6SMBx-tok"', "ya29.a0AfH6SMBx-tok"),
    ("Cookie: session=abcdef0123456789", "abcdef0123456789"),
    ("https://x-access-token:ghs_0123456789abcdefghij@github.com/o/r", "ghs_0123456789abcdefghij"),
]


@pytest.mark.parametrize("raw, secret", SHAPES, ids=[s[:28] for s, _ in SHAPES])
def test_every_shape_is_masked_and_then_scans_clean(raw, secret):
    masked = redact.text(raw)
    assert secret not in masked and redact.MASK in masked, masked
    assert redact.scan_text(raw, "f") != []                    # the scan sees it before masking
    assert redact.scan_text(masked, "f") == []                 # and nothing after
    assert redact.text(masked) == masked                       # masking is idempotent


@pytest.mark.parametrize("name", ["DB_PASS", "STRIPE_SK", "PGPASSWORD", "OPENAI_API_KEY", "SMTP_PASSWORD",
                                  "JWT_SECRET", "githubToken", "x-api-key", "access_token", "SECRET_KEY"])
def test_env_entries_named_as_secrets_are_masked(name):
    doc = {"env": [{"name": name, "value": "plain-value-1"}, {"name": "LOG_LEVEL", "value": "debug"}]}
    out = redact.data(doc)
    assert out["env"][0]["value"] == redact.MASK and out["env"][1]["value"] == "debug"


@pytest.mark.parametrize("name", ["password_env", "TOKEN_URL", "PUBLIC_KEY", "nextPageToken", "probe_key",
                                  "secret", "key", "LOG_LEVEL", "DATABASE_HOST", "secretmanager"])
def test_names_about_secrets_are_not_secrets(name):
    assert not redact.secret_name(name) or name in ("secret", "key")
    doc = {name: "kept-as-is"}
    assert redact.data(doc) == doc


ORDINARY = [
    "https://api-staging.netrasystems.ai/health answered 503 after 1.2 s (postgresql://10.0.0.3:5432/netra)",
    "cloudsql.password_env: expected an environment variable name, got 'x y'",
    '{"secretKeyRef": {"secret": "jwt-secret-staging", "version": "latest"}}',
    '{"key": "run.services", "record": {"ok": true}}',
    "sha256:9b74c9897bac770ffc029102a200c5de3f5d1b9f6b7b8f4b5e1e8d2c0a1f2e3d",
    "gcloud secrets versions add jwt-secret-staging --data-file=-",
    "Token: set",
    "Apply it with: runbook run -p remediation.apply=true -p remediation.confirm=0a1b2c3d4e5f",
    "forwarding rule staging-https-rule has IP 34.120.0.10",
    "-p KEY.PATH=VALUE, e.g. -p cloudsql.probe_samples=20",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text):
    assert redact.text(text) == text
    assert redact.scan_text(text, "f") == []


def test_a_registered_value_of_any_length_is_masked_as_a_token():
    redact.register("q7")
    redact.register("zX9")
    assert redact.text("password is q7, pin zX9.") == f"password is {redact.MASK}, pin {redact.MASK}."
    assert redact.text("aq7b and zX90 stay") == "aq7b and zX90 stay"   # inside words: not that value


def test_a_registered_value_is_masked_in_encoded_forms():
    value = "reg-Istered/Value+1"
    redact.register(value)
    b64 = base64.b64encode(value.encode()).decode()
    for form in (value, "reg-Istered%2FValue%2B1", b64):
        assert form not in redact.text(f"payload {form} end")
    assert redact.scan_text(f"x {b64} y", "f")[0].kind == "registered value"


def test_scan_names_file_line_and_kind_never_the_value():
    hits = redact.scan_text("line one\nDB_PASS=hunter22\n", "evidence/x.json")
    assert [str(h) for h in hits] == ["evidence/x.json:2: secret assignment"]
    assert "hunter22" not in str(hits)


# --- property: any credential shape, any secret value --------------------------------------------

SECRET_CHARS = string.ascii_letters + string.digits + "-_.~+/!%*"
secret_values = st.text(SECRET_CHARS, min_size=8, max_size=40).filter(lambda v: v.strip(".~-_+/") == v and len(set(v)) > 3)
env_names = st.sampled_from(["DB_PASS", "STRIPE_SK", "PGPASSWORD", "API_KEY", "SMTP_PASSWORD", "AUTH_TOKEN",
                             "client_secret", "access_token", "GITHUB_TOKEN", "DATABASE_PASSWORD", "PRIVATE_KEY"])
TEMPLATES = [
    "{name}={value}",
    "export {name}='{value}'",
    '{{"{name}": "{value}"}}',
    "{{'name': '{name}', 'value': '{value}'}}",
    "https://svc.example.com/cb?{name}={value}&state=1",
    "postgresql://app:{value}@10.0.0.3:5432/app",
    "amqp://user:{value}@mq.internal/vhost",
    "Authorization: Bearer {value}",
    "X-API-Key: {value}",
]


@settings(max_examples=300, deadline=None)
@given(name=env_names, value=secret_values, template=st.sampled_from(TEMPLATES),
       before=st.text(string.ascii_letters + " :,()", max_size=20), after=st.text(string.ascii_letters + " .,", max_size=20))
def test_generated_credential_shapes_never_survive(name, value, template, before, after):
    if "'" in template or '"' in template:
        value = value.replace("'", "").replace('"', "")
    raw = f"{before} {template.format(name=name, value=value)} {after}"
    masked = redact.text(raw)
    assert value not in masked, (raw, masked)
    assert redact.scan_text(masked, "f") == []
