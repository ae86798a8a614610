"""Children that take Ctrl-C as they would from a terminal.

A command started in the background by a non-interactive shell (as a CI
runner may start the test suite) inherits SIGINT *ignored*, and an ignored
signal stays ignored across fork and exec: an ``lrs`` process the tests
start would then never see the Ctrl-C they send it.  In a terminal SIGINT
has its default action, so the tests that send it give their children that.
"""

from __future__ import annotations

import signal


def as_from_a_terminal() -> None:
    """``preexec_fn``: SIGINT back to its default action in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
