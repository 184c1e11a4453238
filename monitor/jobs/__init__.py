"""Scheduled work. This package is the only one that imports APScheduler."""

from __future__ import annotations

from monitor.jobs.scheduler import Scheduler

__all__ = ["Scheduler"]
