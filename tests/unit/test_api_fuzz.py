"""Property-based fuzz of the API from its own OpenAPI schema (schemathesis + hypothesis):
for any generated input, every endpoint answers without a 5xx. The app runs in process with
its real backend (scheduler service, journal, key store, file store); no Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from luma_ray.api.app import ApiSettings, create_app  # noqa: E402
from luma_ray.api.backend import LocalBackend  # noqa: E402
from luma_ray.api.keys import KeyStore  # noqa: E402
from luma_ray.config import default_tiers, parse_config  # noqa: E402
from luma_ray.models.interface import ModelLimits  # noqa: E402
from luma_ray.scheduler.journal import Journal  # noqa: E402
from luma_ray.scheduler.service import SchedulerService  # noqa: E402
from luma_ray.storage import LocalBlobStore  # noqa: E402

LIMITS = {"luma-tiny": ModelLimits(48, 128, 128, 50, 8, 8, 8)}
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("fuzz")
    svc = SchedulerService(parse_config({}), Journal(root / "j.sqlite"), LIMITS, lambda: 1e9)
    keys = KeyStore(root / "keys.sqlite", [t.name for t in default_tiers()])
    KEY["admin"], _ = keys.create("fuzzer", "api", admin=True, now_s=0)
    app = create_app(
        LocalBackend(svc), keys, LocalBlobStore(root / "results"), ApiSettings(sse_timeout_s=0.0)
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_server_errors(case) -> None:
    for headers in ({"Authorization": f"Bearer {KEY['admin']}"}, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        if response.status_code >= 400:
            ctype = response.headers["content-type"]
            ctype = ctype[0] if isinstance(ctype, list) else ctype
            assert ctype.startswith("application/problem+json"), (case.path, ctype)
