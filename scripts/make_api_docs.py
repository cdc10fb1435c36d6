"""Write docs/api.md, the reference of the public API, from the docstrings of ``doseatlas.__all__``.

``tests/test_api.py`` fails when docs/api.md differs from what this script writes: run it after changing a
public docstring or signature (``python scripts/make_api_docs.py``).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "api.md"

HEADER = """# Python API reference

Generated from the docstrings by `python scripts/make_api_docs.py` (a test fails when this file is stale).
The promised interface is `doseatlas.__all__`: every name below. Everything else is private, whatever its module.
The tutorial is [docs/tutorial.md](tutorial.md).

```python
import doseatlas as da
```
"""


def _target(name: str):
    import doseatlas

    if name == "simulate":
        from doseatlas._api import simulate

        return simulate
    return getattr(doseatlas, name)


def _section(name: str) -> str:
    obj = _target(name)
    if isinstance(obj, str):
        return f"## `{name}`\n\nThe package version (`{name}` = `'<version>'`).\n"
    doc = inspect.getdoc(obj) or "(undocumented)"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        bases = ", ".join(b.__name__ for b in obj.__bases__)
        return f"## `{name}({bases})`\n\n{doc.splitlines()[0]}\n"
    try:
        signature = str(inspect.signature(obj)).replace("'", "")
    except (TypeError, ValueError):
        signature = "(...)"
    kind = "class " if inspect.isclass(obj) else ""
    if inspect.isclass(obj) and name == "RunSettings":
        signature = "(*, ...)  # the options of run(), listed there"
    text = f"## `{kind}{name}{signature}`\n\n```text\n{doc}\n```\n"
    if inspect.isclass(obj):
        for member, value in vars(obj).items():
            if member.startswith("_") or not (callable(value) or isinstance(value, property)):
                continue
            if isinstance(value, classmethod):
                continue
            called = "" if isinstance(value, property) else str(inspect.signature(value)).replace("'", "")
            text += f"\n### `{name}.{member}{called}`\n\n```text\n{inspect.getdoc(value)}\n```\n"
    return text


def render() -> str:
    """The whole of docs/api.md."""
    import doseatlas

    order = [n for n in doseatlas.__all__ if n != "__version__"]
    return HEADER + "\n" + "\n".join(_section(n) for n in order)


def main() -> None:
    API_MD.write_text(render(), encoding="utf-8")
    print(f"wrote {API_MD}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
