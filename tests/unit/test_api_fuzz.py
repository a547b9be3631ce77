"""Property-based fuzz of the API from its own OpenAPI schema (schemathesis + hypothesis):
for any generated input, every endpoint answers without a 5xx, and every error is a problem
document. The app runs in process with its real backend (scheduler service, journal, key
store, file store); no Ray. The live-server variant is in tests/integration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from luma_ray.api.app import ApiSettings, create_app
from luma_ray.api.keys import KeyStore
from luma_ray.config import IngressLimits, default_tiers, parse_config
from luma_ray.models.interface import ModelLimits
from luma_ray.scheduler.journal import Journal
from luma_ray.scheduler.protocol import InProcessScheduler
from luma_ray.scheduler.service import SchedulerService
from luma_ray.storage import LocalBlobStore

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}


def test_no_server_errors_for_any_generated_input(tmp_path: Path) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    svc = SchedulerService(parse_config({}), Journal(tmp_path / "j.sqlite"), LIMITS, lambda: 1e9)
    keys = KeyStore(tmp_path / "keys.sqlite", [t.name for t in default_tiers()])
    key, _ = keys.create("fuzzer", "api", admin=True, now_s=0)
    app = create_app(
        InProcessScheduler(svc),
        keys,
        LocalBlobStore(tmp_path / "results"),
        # No request rate: past it every case would be a 429 that never reaches the route.
        ApiSettings(
            sse_timeout_s=0.0,
            limits=IngressLimits(key_rate_per_s=None),
            asset_secret=b"fuzz-asset-secret-of-32-bytes...",  # /v1/assets checks signatures
        ),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            for headers in ({"Authorization": f"Bearer {key}"}, {}):
                response = case.call(headers=headers)
                statuses.append(response.status_code)
                ctype = response.headers.get("content-type", "")
                ctype = ctype[0] if isinstance(ctype, list) else ctype
                # Errors are problems, and OpenAI's error body under /v1/videos.
                openai_shape = (
                    case.formatted_path.startswith("/v1/videos")
                    and ctype.startswith("application/json")
                    and "error" in response.json()
                )
                if response.status_code >= 500 or (
                    response.status_code >= 400
                    and not (ctype.startswith("application/problem") or openai_shape)
                ):
                    failures.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {ctype}"
                    )

        check()
    assert failures == []
    assert len(statuses) >= 4 * len(operations)
    assert any(s < 300 for s in statuses) and any(s == 401 for s in statuses)
