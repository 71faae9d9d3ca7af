"""``python -m pipelines``: the ``biomed`` command line."""

import sys

from pipelines.cli import main

sys.exit(main())
