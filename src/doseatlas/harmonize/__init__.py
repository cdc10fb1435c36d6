"""Putting sources together: identities across data sets and comparable numbers (``consistency``)."""
