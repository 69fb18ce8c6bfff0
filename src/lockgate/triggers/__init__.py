"""Triggers: webhooks (and, later, schedules and pollers) that start runs."""
