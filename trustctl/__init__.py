"""trustctl: sign container image tags after push, verify them before deploy.

The client CLI of the TUF content-trust service (see docs/cli.md). The command line
lives in :mod:`trustctl.cli`; the library modules it drives are importable on their
own (:mod:`trustctl.verify`, :mod:`trustctl.repo`, :mod:`trustctl.registry`, ...).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
