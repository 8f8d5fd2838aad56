"""Entry point: ``python -m pdm``."""

import sys

from pdm.cli import main

if __name__ == "__main__":
    sys.exit(main())
