"""``python -m switchd.switchctl``: the same as the installed ``switchctl`` command."""

from __future__ import annotations

import sys

from switchd.switchctl.cli import main

if __name__ == "__main__":
    sys.exit(main())
