"""``python -m advparams``: the command line."""

import sys

from advparams.cli import main

sys.exit(main())
