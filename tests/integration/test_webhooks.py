"""Signed webhook deliveries to a real HTTP receiver on 127.0.0.1, retried from the database."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import Engine

from tabops.database import create_database_engine
from tabops.monitoring.alert_store import AlertStore
from tabops.monitoring.alerts import Observation, evaluate
from tabops.monitoring.webhooks import (
    MAX_ATTEMPTS,
    WebhookSender,
    retry_delay,
    sign,
    verify_signature,
)
from tabops.monitoring_rules import AlertRule

SECRET = "s3cret-webhook-key"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule(metric="psi", feature="*", above=0.2)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers with the queued statuses in turn, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    location: str | None = None
    delay_seconds: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receivers() -> Iterator[list[tuple[Receiver, ThreadingHTTPServer]]]:
    """Start receivers on demand with ``start(receivers)``; all are shut down afterwards."""
    started: list[tuple[Receiver, ThreadingHTTPServer]] = []
    yield started
    for _, server in started:
        server.shutdown()
        server.server_close()


def start(started, **options) -> Receiver:
    receiver = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            time.sleep(receiver.delay_seconds)
            self.send_response(status)
            if receiver.location is not None:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/tabops?token=abc"
    started.append((receiver, server))
    return receiver


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


def fire(store: AlertStore, model: str = "churn", value: float = 0.5, now: datetime = T0):
    checks = evaluate([RULE], [Observation("psi", "age", value, 500)])
    return store.apply(model, 2, checks, now=now)


def test_receiver_gets_one_signed_post_per_event(engine, receivers):
    receiver = start(receivers)
    store = AlertStore(engine)
    [event] = fire(store)
    sender = WebhookSender(receiver.url, SECRET)

    stats = sender.deliver_pending(store, T0)

    assert (stats.delivered, stats.retrying, stats.failed) == (1, 0, 0)
    [request] = receiver.received
    assert request.path == "/hooks/tabops?token=abc"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Tabops-Event"] == "firing"
    assert headers["X-Tabops-Delivery"] == event.delivery_id
    assert verify_signature(
        SECRET, headers["X-Tabops-Timestamp"], request.body, headers["X-Tabops-Signature"]
    )
    payload = json.loads(request.body)
    assert payload["event"] == "firing"
    assert (payload["model"], payload["version"], payload["feature"]) == ("churn", 2, "age")
    assert (payload["value"], payload["threshold"], payload["window"]) == (0.5, 0.2, "1d")
    assert payload["fired_at"] == T0.isoformat()
    assert payload["resolved_at"] is None
    [delivery] = store.deliveries("churn")
    assert (delivery.status, delivery.attempts, delivery.delivered_at) == ("delivered", 1, T0)
    assert sender.deliver_pending(store, T0 + timedelta(hours=1)).attempted == 0
    assert len(receiver.received) == 1


def test_a_failed_delivery_is_retried_after_its_back_off(engine, receivers):
    receiver = start(receivers, statuses=[500])
    store = AlertStore(engine)
    fire(store)
    sender = WebhookSender(receiver.url, SECRET)

    first = sender.deliver_pending(store, T0)
    [waiting] = store.deliveries("churn")
    too_soon = sender.deliver_pending(store, T0 + timedelta(seconds=4))
    second = sender.deliver_pending(store, T0 + timedelta(seconds=6))

    assert (first.retrying, too_soon.attempted, second.delivered) == (1, 0, 1)
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 1, "HTTP 500")
    assert waiting.next_attempt_at == T0 + timedelta(seconds=5)
    [done] = store.deliveries("churn")
    assert (done.status, done.attempts) == ("delivered", 2)
    ids = {request.headers["X-Tabops-Delivery"] for request in receiver.received}
    assert len(receiver.received) == 2
    assert ids == {done.id}
    for request in receiver.received:
        headers = request.headers
        assert verify_signature(
            SECRET, headers["X-Tabops-Timestamp"], request.body, headers["X-Tabops-Signature"]
        )


def test_pending_deliveries_survive_a_restart(database_url, receivers):
    first_engine = create_database_engine(database_url)
    first = AlertStore(first_engine)
    fire(first, "churn")
    fire(first, "fraud")
    # The receiver is down: the first process's attempt fails and it stops.
    down = WebhookSender("http://127.0.0.1:9/unreachable", SECRET, timeout_seconds=2)
    assert down.deliver_pending(first, T0).retrying == 2
    first_engine.dispose()

    receiver = start(receivers)
    engine = create_database_engine(database_url)
    try:
        store = AlertStore(engine)
        stats = WebhookSender(receiver.url, SECRET).deliver_pending(
            store, T0 + timedelta(minutes=1)
        )
        statuses = [delivery.status for delivery in store.deliveries()]
    finally:
        engine.dispose()

    assert stats.delivered == 2
    assert statuses == ["delivered", "delivered"]
    models = sorted(json.loads(request.body)["model"] for request in receiver.received)
    assert models == ["churn", "fraud"]


def test_a_redirect_is_not_followed(engine, receivers):
    elsewhere = start(receivers)
    redirecting = start(receivers, statuses=[307], location=elsewhere.url)
    store = AlertStore(engine)
    fire(store)

    stats = WebhookSender(redirecting.url, SECRET).deliver_pending(store, T0)

    assert stats.retrying == 1
    assert elsewhere.received == []
    [delivery] = store.deliveries("churn")
    assert "redirect" in (delivery.last_error or "")


def test_a_delivery_is_given_up_after_its_last_attempt_or_a_day(engine, receivers):
    receiver = start(receivers, statuses=[503] * (MAX_ATTEMPTS + 5))
    store = AlertStore(engine)
    fire(store, "churn")
    sender = WebhookSender(receiver.url, SECRET)
    moment = T0
    for _ in range(MAX_ATTEMPTS):
        sender.deliver_pending(store, moment)
        moment += timedelta(hours=1)
    [given_up] = store.deliveries("churn")

    fire(store, "fraud", now=moment)
    sender.deliver_pending(store, moment)
    late = sender.deliver_pending(store, moment + timedelta(hours=24))

    assert (given_up.status, given_up.attempts) == ("failed", MAX_ATTEMPTS)
    assert late.failed == 1
    assert [d.status for d in store.deliveries("fraud")] == ["failed"]
    assert len(receiver.received) == MAX_ATTEMPTS + 2


def test_a_slow_receiver_times_out_and_is_retried(engine, receivers):
    receiver = start(receivers, delay_seconds=2.0)
    store = AlertStore(engine)
    fire(store)

    stats = WebhookSender(receiver.url, SECRET, timeout_seconds=0.2).deliver_pending(store, T0)

    assert stats.retrying == 1
    [delivery] = store.deliveries("churn")
    assert "no answer within 0.2 s" in (delivery.last_error or "")


def test_concurrent_senders_send_each_delivery_once(database_url, receivers):
    receiver = start(receivers, delay_seconds=0.05)
    engines = [create_database_engine(database_url) for _ in range(3)]
    stores = [AlertStore(engine) for engine in engines]
    for index in range(6):
        fire(stores[0], f"model-{index}")
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def send(store: AlertStore) -> None:
        try:
            barrier.wait(timeout=30)
            WebhookSender(receiver.url, SECRET).deliver_pending(store, T0)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors, errors
        ids = [request.headers["X-Tabops-Delivery"] for request in receiver.received]
        assert len(ids) == 6
        assert len(set(ids)) == 6
        assert {d.status for d in stores[0].deliveries()} == {"delivered"}
    finally:
        for engine in engines:
            engine.dispose()


def test_logs_name_neither_the_secret_nor_the_url_token(engine, receivers, caplog):
    receiver = start(receivers, statuses=[500])
    store = AlertStore(engine)
    fire(store)

    with caplog.at_level(logging.DEBUG, logger="tabops"):
        WebhookSender(receiver.url, SECRET).deliver_pending(store, T0)

    assert "HTTP 500" in caplog.text
    assert SECRET not in caplog.text
    assert "token" not in caplog.text
    assert SECRET not in repr(WebhookSender(receiver.url, SECRET))


def test_an_unsigned_sender_sends_no_signature(engine, receivers):
    receiver = start(receivers)
    store = AlertStore(engine)
    fire(store)

    WebhookSender(receiver.url, None).deliver_pending(store, T0)

    [request] = receiver.received
    assert "X-Tabops-Signature" not in request.headers


def test_verify_signature_refuses_a_changed_body_secret_or_stale_timestamp():
    body = b'{"event":"firing"}'
    now = 1_800_000_000.0
    stamp = str(int(now))
    header = sign(SECRET, stamp, body)

    assert header.startswith("sha256=")
    assert verify_signature(SECRET, stamp, body, header, now=now)
    assert not verify_signature(SECRET, stamp, body + b" ", header, now=now)
    assert not verify_signature("other", stamp, body, header, now=now)
    assert not verify_signature(SECRET, str(int(now) + 1), body, header, now=now)
    assert not verify_signature(SECRET, stamp, body, header, now=now + 301)
    assert verify_signature(SECRET, stamp, body, header, now=now + 301, max_age_seconds=None)
    assert not verify_signature(SECRET, "yesterday", body, header, now=now)


def test_retry_delay_doubles_from_five_seconds_up_to_an_hour():
    delays = [retry_delay(attempts).total_seconds() for attempts in (1, 2, 3, 10, 11, 20, 500)]

    assert delays == [5, 10, 20, 2560, 3600, 3600, 3600]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "https:///no-host",
        "https://user:pass@example.com/hook",
        "http://example.com:99999/hook",
        "not a url",
    ],
)
def test_sender_refuses_a_url_it_cannot_use_safely(url):
    with pytest.raises(ValueError, match="webhook URL"):
        WebhookSender(url, SECRET)
