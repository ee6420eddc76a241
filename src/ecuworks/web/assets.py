"""Third-party browser files: htmx and its SSE extension, from the npm registry.

They are dependencies, not copies: ``make`` runs ``npm ci`` on the repository's
``package-lock.json`` (docs/adr/0005), and the web UI serves the files from
``node_modules``. Without them every page still works as plain HTML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["VENDOR_FILES", "vendor_file"]

# URL name under /vendor/ -> path inside node_modules.
VENDOR_FILES: Final = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "htmx-ext-sse.js": "htmx-ext-sse/dist/sse.min.js",
}
_REPOSITORY: Final = Path(__file__).resolve().parents[3]


def _roots() -> list[Path]:
    chosen = os.environ.get("ECUWORKS_NODE_MODULES")
    roots = [Path(chosen)] if chosen else []
    return [*roots, _REPOSITORY / "node_modules"]


def vendor_file(name: str) -> Path | None:
    """The installed file behind ``/vendor/<name>``, or None."""
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return None
    for root in _roots():
        path = root / relative
        if path.is_file():
            return path
    return None
