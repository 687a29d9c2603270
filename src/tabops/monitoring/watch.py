"""Everything that watches a home's models, built once per process from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from tabops.config import Settings
from tabops.monitoring.alert_store import AlertStore
from tabops.monitoring.alerts import AlertChecker, AlertEvent
from tabops.monitoring.labels import LabelStore
from tabops.monitoring.summary import Monitor
from tabops.monitoring.webhooks import WebhookSender
from tabops.registry.versions import ModelRegistry

logger = logging.getLogger("tabops.alerts")


@dataclass(frozen=True)
class Watch:
    """The label store, the monitor over the log, the alert states and their checker."""

    registry: ModelRegistry
    labels: LabelStore
    monitor: Monitor
    alerts: AlertStore
    checker: AlertChecker

    @classmethod
    def from_settings(cls, settings: Settings, registry: ModelRegistry, engine: Engine) -> Watch:
        """Over the log under ``settings.home`` and the metadata database's ``engine``.

        Alerts go to ``monitoring.webhook_url`` when set (signed with ``webhook_secret``);
        without one they are still recorded and logged (their deliveries ``logged``).
        """
        labels = LabelStore(engine, registry)
        monitor = Monitor.from_settings(settings, registry, labels)
        alerts = AlertStore(engine)
        section = settings.monitoring
        sender = None
        if section.webhook_url:
            secret = section.webhook_secret.get_secret_value() if section.webhook_secret else None
            sender = WebhookSender(section.webhook_url, secret)
        checker = AlertChecker(alerts, sender, monitor.observe, monitor.section)
        return cls(registry, labels, monitor, alerts, checker)

    def check_all(self) -> list[AlertEvent]:
        """Check every registered model's rules, then send what is due (earlier failures too)."""
        events = self.checker.check_all(self.registry.list_models())
        if self.checker.sender is not None:
            self.checker.sender.deliver_pending(self.alerts)
        return events
