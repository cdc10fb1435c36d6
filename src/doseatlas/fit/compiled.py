"""Whether the compiled fit kernel is ready: on the first run numba compiles it (about 20 s) and caches it on
disk; the terminal says so while it happens (``doseatlas run``)."""

from __future__ import annotations

#: the kernel function whose compilation dominates the first run
_MAIN = "fit_all"


def kernel_ready() -> bool:
    """True when the fit kernel is compiled in this process or its up-to-date compiled code is in numba's cache
    (a run will not compile it); True as well when that cannot be told (no message rather than a wrong one)."""
    try:
        from doseatlas.fit import _kernel as K

        dispatcher = getattr(K, _MAIN)
        if dispatcher.signatures:
            return True
        return bool(dispatcher._cache._cache_file._load_index())  # numba's index of cached compilations
    except Exception:
        return True
