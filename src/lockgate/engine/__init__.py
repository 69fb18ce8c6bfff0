"""Behaviour: workers claim runs and drive them through steps, retries and rollbacks."""
