"""The pure model: pipelines, steps, hooks, statuses, codecs. No I/O."""
