"""``python -m cooklab``: the same as the ``cooklab`` command."""

import sys

from cooklab.cli import main

sys.exit(main())
