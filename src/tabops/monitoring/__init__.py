"""Watching served models: prediction log, late labels, drift, performance, alerts, backtests."""
