"""``stop_process``: SIGTERM, then SIGKILL after the timeout, and the child reaped."""

from __future__ import annotations

import subprocess
import sys

from aip.processes import stop_process


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout_and_reaped() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time; "
         "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    stop_process(stubborn, timeout=0.5)
    assert stubborn.returncode == -9  # killed, and waited for: no zombie


def test_a_child_that_obeys_sigterm_ends_with_it_and_nothing_else_is_needed() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(polite)
    assert polite.returncode == -15
    stop_process(polite)  # an ended process, and None, are left alone
    stop_process(None)
