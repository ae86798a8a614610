import sys

from lrs.service import main

sys.exit(main())
