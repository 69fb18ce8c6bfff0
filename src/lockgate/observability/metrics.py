"""Prometheus metrics of one lockgate process (its own registry: no global state)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lockgate.store import Store
from lockgate.store.channels import ChannelStore
from lockgate.store.triggers import TriggerStore


class _QueueCollector(Collector):
    """Read at scrape time: how much work is due, how late, how much is running here; the
    stored deliveries; what each channel stage serves."""

    def __init__(self, store: Store, active: Callable[[], int]) -> None:
        self._store = store
        self._active = active

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, oldest = self._store.queue_stats(time.time())
        yield GaugeMetricFamily(
            "lockgate_queue_depth", "Runs due and not held by any worker.", value=depth
        )
        yield GaugeMetricFamily(
            "lockgate_queue_lag_seconds",
            "How long the oldest due run has been waiting for a worker.",
            value=max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        )
        yield GaugeMetricFamily(
            "lockgate_active_runs", "Runs this process's workers are driving.", value=self._active()
        )
        deliveries = GaugeMetricFamily(
            "lockgate_deliveries",
            "Stored deliveries (webhook, schedule, poller, queue firings), by source and status.",
            labels=["source", "status"],
        )
        for source, status, count in TriggerStore(self._store).counts():
            deliveries.add_metric([source, status], count)
        yield deliveries
        stage_versions, states = ChannelStore(self._store).overview()
        versions = GaugeMetricFamily(
            "lockgate_channel_stage_version",
            "The manifest version each channel stage serves (absent before its first flip).",
            labels=["channel", "stage"],
        )
        for channel, stage, version in stage_versions:
            if version is not None:
                versions.add_metric([channel, stage], version)
        yield versions
        deployments = GaugeMetricFamily(
            "lockgate_channel_deployments",
            "Channel deployments, by channel and state.",
            labels=["channel", "state"],
        )
        for channel, state, count in states:
            deployments.add_metric([channel, state], count)
        yield deployments


class Metrics:
    """Counters the engine updates, and the queue read from the store when scraped."""

    def __init__(self, store: Store, active: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.runs_started = Counter(
            "lockgate_runs_started", "Runs that began executing.", registry=self.registry
        )
        self.runs_finished = Counter(
            "lockgate_runs_finished",
            "Runs that ended, by status.",
            ["status"],
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "lockgate_step_duration_seconds",
            "Time from a step's start to its end, by outcome.",
            ["status"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600),
        )
        self.runs_pruned = Counter(
            "lockgate_runs_pruned",
            "Finished runs deleted by retention, by status.",
            ["status"],
            registry=self.registry,
        )
        self.fenced_writes = Counter(
            "lockgate_fenced_writes_refused",
            "Writes of a worker that had lost a run's lease, refused by its fencing token.",
            registry=self.registry,
        )
        self.webhook_answers = Counter(
            "lockgate_webhook_answers",
            "Webhook requests answered, by HTTP status (401s are bad signatures).",
            ["code"],
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(store, active))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
