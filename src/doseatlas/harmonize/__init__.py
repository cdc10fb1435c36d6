"""Putting sources together: identities, cross-source consistency and the ML-ready export (pure functions)."""
