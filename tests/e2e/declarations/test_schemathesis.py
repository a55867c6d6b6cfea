"""The declarations API against its own OpenAPI document: schemathesis (all checks, stateful links
where the document has them) against the service running as a process with real Kafka and
PostgreSQL, signed in as each role. Zero server errors, zero responses that break the schema.

Bounded: a few examples per operation and role, and a time budget per role (CI stays well under 30
minutes). The figures (operations, test cases, failures) are printed for the run's record.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.auth import Role
from tests.e2e.declarations.test_scripted_month import service_at
from tests.integration.declarations.harness import COMMUNITY, fresh_settings, register_roster
from tests.support.services import RunningService, token

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))
SECONDS_PER_ROLE = int(os.environ.get("SCHEMATHESIS_SECONDS_PER_ROLE", "15"))
# A schema cannot say which subject exists or which month is certified: a well-formed request may be
# refused by the rules (403 role, 404 unknown, 409 state, 422 business rule), always in ErrorBody.
CONFIG = textwrap.dedent("""
    [checks.positive_data_acceptance]
    expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

    [checks.negative_data_rejection]  # the defaults, plus 413: a body over the limit is refused before parsing
    expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
""")
ROLES = {
    "recorder": (Role.recorder, COMMUNITY, ()),
    "supervisor": (Role.supervisor, COMMUNITY, ()),
    "declarant": (Role.declarant, COMMUNITY, ("p-xu",)),
    "site": (Role.site, COMMUNITY, ()),
    "leading_group": (Role.leading_group, COMMUNITY, ()),
    "secretary": (Role.secretary, COMMUNITY, ()),
    "clerk": (Role.clerk, COMMUNITY, ()),
    "auditor": (Role.auditor, "*", ()),
    "county_admin": (Role.county_admin, "*", ()),
}


def cli() -> list[str] | None:
    """schemathesis from the dev extras, or a CLI named by SCHEMATHESIS_CLI."""
    if os.environ.get("SCHEMATHESIS_CLI"):
        return [os.environ["SCHEMATHESIS_CLI"]]
    if importlib.util.find_spec("schemathesis") is not None:
        return [sys.executable, "-m", "schemathesis.cli"]
    found = shutil.which("schemathesis")
    return [found] if found else None


@pytest.fixture(scope="module")
def service(stack: tuple[str, str]) -> Iterator[RunningService]:
    import asyncio

    import httpx

    settings = asyncio.run(fresh_settings(*stack))
    with service_at(settings, "2026-11-30T12:00:00+08:00") as svc:
        async def roster() -> None:
            async with httpx.AsyncClient(base_url=svc.url, timeout=30) as http:
                await register_roster(http)

        asyncio.run(roster())
        yield svc


@pytest.mark.parametrize("role", list(ROLES))
def test_given_each_role_then_no_server_error_and_no_response_breaks_the_schema(
    service: RunningService, role: str, tmp_path: Path
) -> None:
    command = cli()
    assert command is not None, "schemathesis is missing: it is in the dev extras (pip install -e '.[dev]')"
    r, community, subjects = ROLES[role]
    bearer = token(f"st-{role}", r, community, *subjects)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    run = subprocess.run(
        [*command, "--config-file", str(config), "--no-color", "run", f"{service.url}/openapi.json",
         "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--max-time", str(SECONDS_PER_ROLE),
         "--phases", "examples,coverage,fuzzing,stateful", "--seed", "20261130", "--workers", "2",
         "--generation-database", "none", "--request-timeout", "20", "--suppress-health-check", "all",
         "-H", f"Authorization: Bearer {bearer}",
         "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")],
        capture_output=True, text=True, timeout=SECONDS_PER_ROLE * 4 + 120, check=False, cwd=tmp_path)
    summary = [line for line in run.stdout.splitlines() if any(
        w in line for w in ("Operations", "Test cases", "Test Phases", "passed", "failed", "error", "Failures"))]
    print(f"[{role}]", *summary[-12:], sep="\n  ")
    if os.environ.get("SCHEMATHESIS_OUTPUT"):  # the whole report, for a reader
        Path(os.environ["SCHEMATHESIS_OUTPUT"]).with_suffix(f".{role}.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
