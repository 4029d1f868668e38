"""``python -m trustctl``."""

from __future__ import annotations

from trustctl.cli import main

if __name__ == "__main__":
    main()
