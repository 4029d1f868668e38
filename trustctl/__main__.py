"""``python -m trustctl`` (through a running ``trustctl agent`` when one is set)."""

from __future__ import annotations

from trustctl.launcher import main

if __name__ == "__main__":
    main()
