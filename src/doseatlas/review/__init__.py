"""Curve review: a local web app to inspect curves and record decisions, and their application to a run.

* :mod:`doseatlas.review.store` - the decisions in SQLite (one row per curve, an audit row per change).
* :mod:`doseatlas.review.apply` - the stable curve identity and ``doseatlas run --reviews`` (pure table functions).
* :mod:`doseatlas.review.app` - the Starlette app (server-rendered pages and the JSON API).
"""
