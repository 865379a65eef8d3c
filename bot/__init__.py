"""Slack transport: bolt app factory, listeners, Block Kit, delivery, scheduler wiring."""
