"""Watching served models: the prediction log, late labels, drift, performance, alerts, backtests."""
