"""``python -m authcore``: the command line."""

import sys

from authcore.cli import main

sys.exit(main())
