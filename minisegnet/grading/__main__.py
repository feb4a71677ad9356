"""``python -m minisegnet.grading [PATH ...]``: the same as ``minisegnet grade``."""
import sys

from .cli import main

sys.exit(main())
