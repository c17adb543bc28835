"""A signal that lands where Python cannot raise (a weakref callback: an import lock's
clean-up while a command imports lazily) is not lost, and prints no traceback: seen under
load as 'Exception ignored in: <function _get_module_lock.<locals>.cb>' on stderr."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import gc, signal, sys, time, weakref
from fleetaudit import interrupt
interrupt.install()

class Thing:
    pass

def callback(_ref):
    # The signal arrives while the callback runs: the handler raises here, where
    # Python can only print the exception and go on.
    signal.raise_signal(signal.SIGINT)
    for _ in range(1000):
        pass

thing = Thing()
ref = weakref.ref(thing, callback)
try:
    del thing
    gc.collect()
    time.sleep(5)  # the stop is raised again within RETRY (10 ms): this sleep ends then
    print("not interrupted")
except interrupt.Interrupted as exc:
    print("interrupted:", exc)
"""


def test_a_signal_inside_a_weakref_callback_is_raised_at_the_next_line():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "interrupted: SIGINT", (done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, \
        done.stderr


def test_other_unraisable_exceptions_are_still_reported():
    script = SCRIPT.replace("signal.raise_signal(signal.SIGINT)", "raise ValueError('x')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "not interrupted"
    assert "Exception ignored" in done.stderr and "ValueError: x" in done.stderr
