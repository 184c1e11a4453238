"""Alerts: threshold rules over each evaluation, and each alert's lifecycle. Pure: no I/O."""
