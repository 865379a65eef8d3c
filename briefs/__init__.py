"""Jinja2 templates and their renderer for briefs, summaries and alerts."""
