"""How an error message names an option: as the caller wrote it (``plate_map=`` in Python, ``--plate-map`` on the
command line). Validation happens once, in the API's option classes; the command line sets the spelling."""

from __future__ import annotations

import contextvars

#: how messages spell an option: "api" (``plate_map=``) or "cli" (``--plate-map``); the CLI sets "cli"
SPELLING: contextvars.ContextVar[str] = contextvars.ContextVar("doseatlas_option_spelling", default="api")


def spell(name: str, value: str | None = None) -> str:
    """An option (with a value) as the caller writes it: ``--plate-map FILE`` or ``plate_map=FILE``."""
    if SPELLING.get() == "cli":
        flag = "--" + ("format" if name == "format" else name.replace("_", "-"))
        return flag if value is None else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}" if value != "FILE" else f"{name}=FILE"


__all__ = ["SPELLING", "spell"]
