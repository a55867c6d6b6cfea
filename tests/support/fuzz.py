"""Schemathesis (all checks, stateful links where the document has them) against a service running as a
process, signed in as one role: zero server errors, zero responses that break the schema.

Bounded: a few examples per operation and a time budget per run (CI stays well under 30 minutes). The
figures (operations, test cases, failures) are printed for the run's record; SCHEMATHESIS_OUTPUT names
a file stem for the whole report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from shared.auth import Role
from tests.support.services import token

# A role to sign in as: (role, community, subject ids)
As = tuple[Role, str, tuple[str, ...]]

# A schema cannot say which subject exists or which month is certified: a well-formed request may be
# refused by the rules (403 role, 404 unknown, 409 state, 422 business rule), always in ErrorBody.
CONFIG = textwrap.dedent("""
    [checks.positive_data_acceptance]
    expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

    [checks.negative_data_rejection]  # the defaults, plus 413: a body over the limit is refused before parsing
    expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
""")
SEED = "20261130"


def cli() -> list[str] | None:
    """schemathesis from the dev extras, or a CLI named by SCHEMATHESIS_CLI."""
    if os.environ.get("SCHEMATHESIS_CLI"):
        return [os.environ["SCHEMATHESIS_CLI"]]
    if importlib.util.find_spec("schemathesis") is not None:
        return [sys.executable, "-m", "schemathesis.cli"]
    found = shutil.which("schemathesis")
    return [found] if found else None


def known_values(known: dict[str, list[str]], probability: float) -> str:
    """Config binding each named parameter (in the path, the query or the body) to values the stack holds,
    drawn with ``probability``: the fuzzer reaches the rules behind a 403/404 as well as the refusals."""
    lines = []
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name in known:
        for where in ("path", "query", "body"):
            lines.append(f'"{where}.{name}" = {{ dictionary = "{name}", probability = {probability} }}')
    return "\n".join(lines) + "\n"


def fuzz_as(url: str, role: str, who: As, workdir: Path, *, known: dict[str, list[str]] | None = None,
            max_examples: int = 8, seconds: int = 15) -> None:
    """``fuzz`` signed in as ``who`` (a token for the test user ``st-<role>``)."""
    r, community, subjects = who
    fuzz(url, role, workdir, bearer=token(f"st-{role}", r, community, *subjects), known=known,
         max_examples=max_examples, seconds=seconds)


def fuzz(url: str, label: str, workdir: Path, *, bearer: str | None = None,
         known: dict[str, list[str]] | None = None,
         max_examples: int = 8, seconds: int = 15) -> None:
    """Run schemathesis against ``url``/openapi.json (as ``bearer`` when given); fail with its report."""
    command = cli()
    assert command is not None, "schemathesis is missing: it is in the dev extras (pip install -e '.[dev]')"
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG + (known_values(known, 0.5) if known else ""))
    auth = ["-H", f"Authorization: Bearer {bearer}"] if bearer else []
    run = subprocess.run(
        [*command, "--config-file", str(config), "--no-color", "run", f"{url}/openapi.json",
         "--checks", "all", "--max-examples", str(max_examples), "--max-time", str(seconds),
         "--phases", "examples,coverage,fuzzing,stateful", "--seed", SEED, "--workers", "1",
         "--generation-database", "none", "--request-timeout", "20", "--suppress-health-check", "all",
         *auth, "--report", "junit", "--report-junit-path", str(workdir / "junit.xml")],
        capture_output=True, text=True, timeout=seconds * 4 + 120, check=False, cwd=workdir)
    summary = [line for line in run.stdout.splitlines() if any(
        w in line for w in ("Operations", "Test cases", "Test Phases", "passed", "failed", "error", "Failures"))]
    print(f"[{label}]", *summary[-12:], sep="\n  ")
    if os.environ.get("SCHEMATHESIS_OUTPUT"):  # the whole report, for a reader
        Path(os.environ["SCHEMATHESIS_OUTPUT"]).with_suffix(f".{label}.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
