"""Secret format verdicts describe shapes, never contents."""
from __future__ import annotations

import pytest

from runbook_lib.secret_formats import verdict


@pytest.mark.parametrize("name, value, ok", [
    ("database-url", "postgresql://app:s3cr3tvalue@10.0.0.3:5432/app", True),
    ("database-url", "mysql://app:s3cr3tvalue@10.0.0.3/app", False),
    ("database-direct-url", "postgres://app@/app", False),          # no host
    ("redis-url", "rediss://:pw@10.0.0.4:6379/0", True),
    ("jwt-secret-staging", "x" * 32, True),
    ("jwt-secret-staging", "short-secret", False),
    ("cors-allowed-origins", "https://staging.netrasystems.ai,https://api-staging.netrasystems.ai", True),
    ("cors-allowed-origins", "https://app.staging.netrasystems.ai", False),
    ("openai-api-key", "", False),
])
def test_verdicts(name, value, ok):
    got, shape, reason = verdict(name, value, deprecated_patterns=["*.staging.netrasystems.ai"])
    assert got is ok and (reason if not ok else True)
    for fragment in ("s3cr3t", "pw@", "xxxxxxxx"):
        assert fragment not in shape + reason
