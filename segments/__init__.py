"""The segment engine: rule language, sources, evaluation, quality gate, drift, bitmaps.

Knows nothing of Slack or of the database session; callers pass data in and get
plain values back.
"""
