"""Notifications (issue 16): fills and events reach the outbox in the transaction that records them, a separate
drainer delivers them to a webhook (HMAC-signed) and to Telegram's ``sendMessage``, retries after a 500 with
backoff, keeps to its rate limit, and after a crash between the send and the mark sends the SAME message again
(same id, body and signature), which the receiver dedupes. Real PostgreSQL, a local HTTP stand-in."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tests.helpers import sample_rows, seed_features
from tests.notify_standin import StandIn
from tests.traders import connector, make_trader
from trader import account_records, sleeve_records
from trader.notify.channels import TelegramChannel, WebhookChannel
from trader.notify.drainer import NotificationDrainer
from trader.notify.summary import daily_summary, enqueue_due_summary
from trader.transaction import Transaction

pytestmark = pytest.mark.integration
SECRET = "s3cret-hmac-key"
TOKEN = "123456:AAH-not-a-real-token"


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Crash(BaseException):
    """The process dies here: nothing after this line runs, uncommitted work is lost."""


class CrashAfterSend:
    """A channel whose process dies right after the receiver answered, before the delivery is marked."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name

    def send(self, msg, attempt):
        self.inner.send(msg, attempt)
        raise Crash


@pytest.fixture
def standin():
    server = StandIn(secret=SECRET).start()
    yield server
    server.stop()


def webhook(standin):
    return WebhookChannel(SecretStr(f"{standin.url}/hook"), SecretStr(SECRET))


def drainer(database_url, channels, clock=None, **kw):
    return NotificationDrainer(connector(database_url), "paper", channels, clock=clock or Clock(), summaries=False, **kw)


def record_events(database_url, n=1, kind="kill_switch"):
    with Transaction(connector(database_url)()) as cur:
        for i in range(n):
            sleeve_records.record_event(cur, "paper", kind, f"event {i}")


def deliveries(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT notification_id, channel, attempts, delivered_at IS NOT NULL AS delivered, last_error"
                                 " FROM trading.notification_deliveries ORDER BY notification_id, channel")).fetchall()


def test_fills_and_kill_switch_changes_reach_the_webhook_signed_and_telegram(db, database_url, standin):
    seed_features(db, sample_rows(200))
    make_trader(database_url).step()  # sma_cross trades: fills
    with Transaction(connector(database_url)()) as cur:
        account_records.set_kill_state(cur, "paper", "HALTED", "drill", "operator")
    with pytest.raises(RuntimeError), Transaction(connector(database_url)()) as cur:  # an event rolled back ...
        sleeve_records.record_event(cur, "paper", "kill_switch", "never happened")
        raise RuntimeError
    telegram = TelegramChannel(standin.url, SecretStr(TOKEN), "42")

    sent = drainer(database_url, [webhook(standin), telegram], rate_per_minute=1000).drain_once()

    with db.connect() as c:
        kinds = c.execute(sa.text("SELECT kind FROM trading.notifications ORDER BY id")).scalars().all()
        fills = c.execute(sa.text("SELECT count(*) FROM trading.fills")).scalar()
    hooks = [r for r in standin.received if r.path == "/hook"]
    bots = [r for r in standin.received if r.path != "/hook"]
    assert fills > 0 and kinds == ["fill"] * fills + ["kill_switch"]  # ... told to no one
    assert sent == 2 * len(kinds) and all(d.delivered for d in deliveries(db))
    assert [h.json["kind"] for h in hooks] == kinds and all(h.signature_ok for h in hooks)
    assert [h.headers["X-Klinepipe-Message-Id"] for h in hooks] == [h.json["id"] for h in hooks]
    assert {b.path for b in bots} == {f"/bot{TOKEN}/sendMessage"}
    assert bots[-1].json["chat_id"] == "42" and "[PAPER] Kill switch: HALTED by operator: drill" in bots[-1].json["text"]
    assert "Fill: BUY" in bots[0].json["text"] and f"#{hooks[0].json['id']}" in bots[0].json["text"]


def test_a_500_is_retried_after_the_backoff_then_delivered_once(db, database_url, standin):
    record_events(database_url)
    standin.statuses = [500]
    clock = Clock()
    d = drainer(database_url, [webhook(standin)], clock, first_delay=5.0)

    first = d.drain_once()
    failed = deliveries(db)
    too_soon = d.drain_once()
    clock.now += 5
    later = d.drain_once()

    assert (first, too_soon, later) == (0, 0, 1)
    assert [(f.attempts, f.delivered, f.last_error) for f in failed] == [(1, False, "HTTP 500")]
    assert [(f.attempts, f.delivered, f.last_error) for f in deliveries(db)] == [(2, True, None)]
    assert [(r.status, r.headers["X-Klinepipe-Attempt"]) for r in standin.received] == [(500, "1"), (200, "2")]
    assert standin.received[0].body == standin.received[1].body  # the same message, the same signature
    assert standin.received[0].headers["X-Klinepipe-Signature"] == standin.received[1].headers["X-Klinepipe-Signature"]


def test_a_crash_between_send_and_mark_resends_the_same_id_and_the_receiver_keeps_it_once(db, database_url, standin):
    record_events(database_url, 2)

    with pytest.raises(Crash):
        drainer(database_url, [CrashAfterSend(webhook(standin))]).drain_once()
    unmarked = deliveries(db)
    drainer(database_url, [webhook(standin)]).drain_once()  # the restarted trader's drainer

    ids = [r.headers["X-Klinepipe-Message-Id"] for r in standin.received]
    assert unmarked == []  # the crash took the mark with it
    assert ids == ["klinepipe-paper-1", "klinepipe-paper-1", "klinepipe-paper-2"]
    assert standin.received[0].body == standin.received[1].body and all(r.signature_ok for r in standin.received)
    assert standin.accepted_ids == {"klinepipe-paper-1": 1, "klinepipe-paper-2": 1}
    assert [d.delivered for d in deliveries(db)] == [True, True]


def test_sends_keep_to_the_rate_limit_per_channel(db, database_url, standin):
    record_events(database_url, 5)
    clock = Clock()
    d = drainer(database_url, [webhook(standin)], clock, rate_per_minute=2)

    counts = [d.drain_once()]
    clock.now += 30  # one more token
    counts.append(d.drain_once())
    clock.now += 60
    counts.append(d.drain_once())

    assert counts == [2, 1, 2] and len(standin.received) == 5


def test_a_failing_channel_records_its_status_never_the_token(db, database_url, standin):
    record_events(database_url)
    standin.statuses = [502]
    drainer(database_url, [TelegramChannel(standin.url, SecretStr(TOKEN), "42")]).drain_once()

    (failed,) = deliveries(db)
    assert failed.last_error == "HTTP 502" and TOKEN not in failed.last_error


def test_the_drainer_thread_never_holds_up_a_trading_step(db, database_url, standin):
    record_events(database_url)
    standin.hold.set()  # the receiver takes the request and does not answer
    background = drainer(database_url, [webhook(standin)]).start(interval=0.05)
    try:
        assert standin.waiting.wait(30)  # the drainer is stuck in a send ...
        seed_features(db, sample_rows(200))
        trades = make_trader(database_url).step()  # ... and the trader trades meanwhile
        assert trades and not standin.received
    finally:
        standin.release.set()
        background.stop()
    with db.connect() as c:
        fills = c.execute(sa.text("SELECT count(*) FROM trading.notifications WHERE kind = 'fill'")).scalar()
    assert fills > 0


def test_the_daily_summary_is_enqueued_once_per_day(db, database_url):
    seed_features(db, sample_rows(200))
    make_trader(database_url).step()
    with Transaction(connector(database_url)()) as cur:
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
        day = now.date()
        summary = daily_summary(cur, "paper", day)
        cur.execute("UPDATE trading.signals SET created_at = created_at - interval '1 day'")  # the trading was yesterday
        first, again = enqueue_due_summary(cur, "paper", now), enqueue_due_summary(cur, "paper", now)
        cur.execute("SELECT count(*) FROM trading.notifications WHERE kind = 'daily_summary'")
        rows = cur.fetchone()[0]
    assert summary["orders"] > 0 and summary["decisions"] == 200 and summary["kill_switch"] == "ACTIVE"
    assert (first, again, rows) == (True, False, 1)


def test_status_shows_what_the_outbox_has_not_delivered(db, database_url, monkeypatch, capsys):
    from trader.__main__ import main

    record_events(database_url, 3)
    monkeypatch.setenv("DATABASE_URL", database_url)
    main(["status"])

    assert "notifications (last 24 h): 3 not delivered to any channel yet; newest" in capsys.readouterr().out


def test_an_outage_line_is_told_and_a_dead_database_costs_only_the_record(db, database_url):
    import psycopg2

    trader = make_trader(database_url)
    told = trader.record_outage("binance down: cannot talk to Binance (ConnectionError); retrying")

    def refused():
        raise psycopg2.OperationalError("connection refused")

    trader.reset_connection()
    trader._connect = refused
    lost = trader.record_outage("postgres down: connection refused")

    with db.connect() as c:
        rows = c.execute(sa.text("SELECT kind, payload->>'detail' FROM trading.notifications")).fetchall()
    assert (told, lost) == (True, False)
    assert [tuple(r) for r in rows] == [("outage", "binance down: cannot talk to Binance (ConnectionError); retrying")]


def test_a_429_waits_what_telegram_asks_before_the_next_attempt(db, database_url, standin):
    record_events(database_url)
    standin.statuses = [429]
    clock = Clock()
    d = drainer(database_url, [TelegramChannel(standin.url, SecretStr(TOKEN), "42")], clock, first_delay=5.0)

    sent = [d.drain_once()]
    clock.now += 5  # the backoff alone would retry now; Telegram asked for 7 s
    sent.append(d.drain_once())
    clock.now += 2
    sent.append(d.drain_once())

    assert sent == [0, 0, 1] and [r.status for r in standin.received] == [429, 200]
