"""The suite passes on any calendar date: one clock for the tests and every nok they start.

CI runs on whatever day it runs. A test that fixes its own clock while a subprocess reads
the real one breaks on the first day the two disagree, so the tests set one clock
(``tests/testclock``) and these checks run a sample of the date-sensitive tests with it
moved years ahead.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NOW, run_nok

ROOT = Path(__file__).parent.parent

# Retention deadlines, purges, "today" defaults, dates in backups and the clock-behind guard.
DATE_SENSITIVE = [
    "tests/test_purge.py",
    "tests/test_settings.py",
    "tests/test_import.py::test_given_defaults_to_today",
    "tests/test_backup.py",
    "tests/test_cli_core.py",
]


def test_a_nok_subprocess_reads_the_tests_clock(tmp_path):
    result = run_nok("status", env={"NOK_VAULT": str(tmp_path / "none.db")})
    assert result.returncode == 3
    probe = subprocess.run(
        [sys.executable, "-c", "from vault import dates; print(dates.utcnow().isoformat())"],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = dt.datetime.fromisoformat(probe.stdout.strip())
    assert NOW <= seen < NOW + dt.timedelta(hours=2)


@pytest.mark.slow
@pytest.mark.parametrize("moved_to", ["2031-06-30T12:00:00+00:00", "2036-02-29T10:00:00+00:00"])
def test_date_sensitive_tests_pass_years_ahead(moved_to):
    env = {k: v for k, v in os.environ.items() if k != "NOKTEST_CLOCK"}
    env["NOKTEST_NOW"] = moved_to
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", *DATE_SENSITIVE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
