"""Schedules: intervals and cron in a time zone, each tick once, misfire policies."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from lockgate import App, InvalidState, ParamsError, Pipeline, StepContext, step
from lockgate.triggers.schedules import next_fire


@step
def tick(ctx: StepContext) -> None:
    pass


@pytest.fixture
def scheduled(app: App) -> App:
    app.register(Pipeline("nightly", [tick]))
    return app


def test_cron_follows_the_time_zone_across_dst() -> None:
    """02:30 Berlin on the spring-forward day does not exist: it fires at 03:00 local."""
    zone = ZoneInfo("Europe/Berlin")
    before = datetime(2026, 3, 29, 1, 0, tzinfo=zone).timestamp()
    first = next_fire("30 2 * * *", "Europe/Berlin", None, before, before)
    assert datetime.fromtimestamp(first, zone).strftime("%m-%d %H:%M") == "03-29 03:00"
    second = next_fire("30 2 * * *", "Europe/Berlin", None, first, first)
    assert datetime.fromtimestamp(second, zone).strftime("%m-%d %H:%M %z") == "03-30 02:30 +0200"
    six = next_fire("*/10 * * * * *", "UTC", None, 0, 1_000_000_003.0)  # seconds first
    assert six == 1_000_000_010.0


def test_bad_schedules_list_every_problem(scheduled: App) -> None:
    """Cron, interval, time zone and misfire are all checked."""
    with pytest.raises(ParamsError) as info:
        scheduled.schedules.create(
            pipeline="nightly", cron="61 * * *", timezone="Mars/Base", misfire="x"
        )
    assert info.value.problems == [
        "cron: '61 * * *' has 4 fields; a cron expression has 5 (minute hour day-of-month "
        "month day-of-week), or 6 with the second first",
        "timezone: 'Mars/Base' is not an IANA time zone",
        "misfire: skip or run_once",
    ]
    with pytest.raises(ParamsError, match="exactly one of cron or interval_seconds"):
        scheduled.schedules.create(pipeline="nightly")
    # Each bad field is named, with what it takes.
    with pytest.raises(ParamsError) as info:
        scheduled.schedules.create(pipeline="nightly", cron="61 25 * * mon-fri")
    assert info.value.problems == [
        "cron: '61 25 * * mon-fri': the minute field '61' is not valid (0-59)",
        "cron: '61 25 * * mon-fri': the hour field '25' is not valid (0-23)",
    ]


def test_each_tick_fires_once_however_many_schedulers(scheduled: App, settings: object) -> None:
    """Two schedulers on one database: every tick starts exactly one run."""
    other = App(scheduled.settings)
    other.register(*scheduled.registry)
    try:
        schedule = scheduled.schedules.create(pipeline="nightly", interval_seconds=1)
        first_tick = schedule.next_fire_at
        for n in range(3):
            now = first_tick + n + 0.01
            scheduled.schedules.tick(now)
            other.schedules.tick(now)
            scheduled.schedules.tick(now)
        runs = scheduled.list_runs(limit=100)
        assert len(runs) == 3
        assert scheduled.schedules.rows.get(schedule.id).next_fire_at == first_tick + 3
    finally:
        other.close()


@pytest.mark.parametrize(("misfire", "expected"), [("skip", 0), ("run_once", 1)])
def test_misfire_after_downtime(scheduled: App, misfire: str, expected: int) -> None:
    """Hours of missed ticks: skipped entirely, or run once; the next tick is in the future."""
    schedule = scheduled.schedules.create(pipeline="nightly", interval_seconds=60, misfire=misfire)
    later = schedule.next_fire_at + 3 * 3600 + 5
    scheduled.schedules.tick(later)
    assert len(scheduled.list_runs()) == expected
    [delivery] = scheduled.deliveries.list(schedule.id)
    assert delivery.status == ("REJECTED" if misfire == "skip" else "DONE")
    assert len(delivery.run_ids) == expected
    if misfire == "skip":
        assert delivery.error == "missed tick skipped (misfire policy: skip)"
    with pytest.raises(InvalidState, match="only webhook and queue deliveries"):
        scheduled.deliveries.redeliver(delivery.id)
    following = scheduled.schedules.rows.get(schedule.id).next_fire_at
    assert later < following <= later + 60


async def test_the_scheduler_loop_starts_runs(scheduled: App) -> None:
    """The server's scheduler task fires an interval schedule on time."""
    scheduled.schedules.create(pipeline="nightly", interval_seconds=1, params={})
    stop = asyncio.Event()
    task = asyncio.create_task(scheduled.schedules.run(stop))
    started = time.monotonic()
    while len(scheduled.list_runs()) < 2 and time.monotonic() - started < 10:
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert len(scheduled.list_runs()) >= 2


def test_a_simulated_day_of_a_minute_cron_fires_1440_times(scheduled: App) -> None:
    """Two schedulers, an injected clock, one day: every minute once, none missed."""
    other = App(scheduled.settings)
    other.register(*scheduled.registry)
    try:
        start = 1_800_000_000.0  # a minute boundary
        schedule = scheduled.schedules.create(pipeline="nightly", cron="* * * * *")
        scheduled.schedules.rows.advance(schedule.id, schedule.next_fire_at, start + 60)
        for minute in range(1, 1441):
            now = start + minute * 60 + (minute % 7)  # each scheduler a few seconds late
            scheduled.schedules.tick(now)
            other.schedules.tick(now + 0.5)
        runs = scheduled.list_runs(limit=1000) + scheduled.list_runs(
            limit=1000, before=(scheduled.list_runs(limit=1000)[-1].created_at, "")
        )
        keys = {r.idempotency_key for r in runs}
        assert len(runs) == len(keys) == 1440
        assert keys == {f"schedule:{schedule.id}:{start + m * 60!r}" for m in range(1, 1441)}
        # Every tick is stored once as a delivery, with the run it started.
        page = scheduled.deliveries.list(schedule.id, limit=1000)
        page += scheduled.deliveries.list(schedule.id, limit=1000, before=page[-1].id)
        stored = {d.key: d for d in page}
        assert len(page) == len(stored) == 1440
        assert {d.status for d in stored.values()} == {"DONE"}
        assert {d.source for d in stored.values()} == {"schedule"}
        assert {r for d in stored.values() for r in d.run_ids} == {r.id for r in runs}
    finally:
        other.close()
