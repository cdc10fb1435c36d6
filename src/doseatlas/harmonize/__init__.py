"""Putting sources together: resolved identities (:mod:`doseatlas.harmonize.identities`) and comparable
numbers across data sets (:mod:`doseatlas.harmonize.consistency`), and the ML-ready export's labels
(:mod:`doseatlas.harmonize.export`)."""

from doseatlas.harmonize.identities import (
    CellosaurusRecord,
    HarmonizeOptions,
    UserIdentity,
    apply_identities,
    harmonize,
    resolve_identities,
)

__all__ = [
    "CellosaurusRecord",
    "HarmonizeOptions",
    "UserIdentity",
    "apply_identities",
    "harmonize",
    "resolve_identities",
]
