"""`python -m diffparam` runs the command line."""

import sys

from diffparam.cli import main

sys.exit(main())
