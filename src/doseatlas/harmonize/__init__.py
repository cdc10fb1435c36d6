"""Putting sources together: resolved identities (:mod:`doseatlas.harmonize.identities`)."""

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
