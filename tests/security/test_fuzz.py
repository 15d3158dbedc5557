"""Promise 5: no input gets a 5xx. Schemathesis generates requests from the app's own OpenAPI
document (valid ones and invalid ones) for every operation, authenticated with a real token,
against the real app on SQLite and on PostgreSQL; any status >= 500 or exception is a failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from schemathesis import GenerationMode

from tests.reliability import figures
from tests.security.conftest import AppUnderTest
from tests.security.seed import seed

EXAMPLES_PER_MODE = 10
# /api/workers and /api/devices wait `timeout` seconds (up to 10, twice: ping, then inspect)
# for workers that do not exist here; keep it short.
FIXED_QUERY = {"GET /api/workers": {"timeout": 0.05}, "GET /api/devices": {"timeout": 0.05}}


def _probe(
    api: AppUnderTest, strategy: Any, mode: GenerationMode, failures: list[str], tried: list[int]
) -> Callable[[], None]:
    @hsettings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def probe(case: schemathesis.Case) -> None:
        tried.append(1)
        label = case.operation.label
        try:
            response = case.call(headers=api.auth)
        except Exception as e:  # the app raised: the client would have seen a 500
            failures.append(f"{label} [{mode.value}] raised {e!r}")
            return
        if response.status_code >= 500:
            failures.append(
                f"{label} [{mode.value}] -> {response.status_code}: "
                f"{response.text[:200]} for {case.path_parameters} "
                f"{case.query} {str(case.body)[:200]}"
            )

    return probe


def test_no_generated_request_gets_a_server_error(api: AppUnderTest) -> None:
    seed(api.db_url, api.settings.artifacts)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    failures: list[str] = []
    tried: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, query=FIXED_QUERY.get(operation.label))
            try:
                _probe(api, strategy, mode, failures, tried)()
            except hypothesis.errors.Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
    backend = api.db_url.split(":")[0].split("+")[0]
    figures.add(f"fuzz requests ({backend})", len(tried))
    figures.add("fuzz 5xx seen", len(failures))
    assert operations >= 25, "the OpenAPI document lost operations"
    assert len(tried) >= operations * EXAMPLES_PER_MODE, f"only {len(tried)} requests were generated"
    assert not failures, "\n".join(failures[:20])
