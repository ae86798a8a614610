import os
import signal
import sys

# A supervised child's Ctrl-C is its supervisor's (lrs.runtime.workers.leave_ctrl_c_to_the_supervisor):
# ignored here, before any import, so that a Ctrl-C while the child starts up prints nothing of its own.
if os.environ.get("LRS_WORKER_OF"):
    signal.signal(signal.SIGINT, signal.SIG_IGN)

from lrs.runtime.workers import leave_ctrl_c_to_the_supervisor  # noqa: E402

leave_ctrl_c_to_the_supervisor()  # the same rule, named where it is documented and tested

from lrs.service import main  # noqa: E402

sys.exit(main())
