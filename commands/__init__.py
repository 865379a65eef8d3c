"""Use cases behind every command, shared by the CLI, Slack listeners and scheduled jobs."""
