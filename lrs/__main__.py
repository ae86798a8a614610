import sys

from lrs.runtime.workers import leave_ctrl_c_to_the_supervisor

leave_ctrl_c_to_the_supervisor()  # before anything else: a supervised child's Ctrl-C is its supervisor's

from lrs.service import main  # noqa: E402

sys.exit(main())
