"""``python -m wan_worker.cli``: the same as the ``wan-worker`` command."""

import sys

from wan_worker.cli import main

sys.exit(main())
