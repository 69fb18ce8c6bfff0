"""Triggers: what starts runs without a person. Webhooks (one module per provider under
``providers/``), cron and interval schedules, and git pollers, all through one firing path
(``firing.py``) that stores each firing as a delivery with the run it starts."""
