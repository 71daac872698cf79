"""``python -m exchange_sim --replay DIR [--port N] [--speed N] [--start TIME] [--symbols A,B] [--alias-symbols N]``."""

import sys

from ._cli import main

sys.exit(main())
