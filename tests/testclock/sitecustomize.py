"""Python imports this at start-up when the tests put this directory on PYTHONPATH."""

import nok_testclock  # noqa: F401  (installs the test clock when NOKTEST_CLOCK is set)
