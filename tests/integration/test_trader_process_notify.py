"""The real process end to end (issue 16): ``python -m trader run`` (testnet on the fake Binance, real PostgreSQL)
with a webhook (secret from a 0600 file) and Telegram pointed at a local stand-in. The entry's fill is told, signed;
then the operator trips REDUCING from another shell, and the running trader flattens on the exchange and tells the
change, the action and the exit's fill. The token and the secret never appear in the output."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.integration.test_trader_process_drills import start, stop, wait_until
from tests.notify_standin import StandIn
from trader.__main__ import main

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]
SECRET, TOKEN = "whsec-local-drill", "987654:process-drill-token"


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[FIRST][4], usdt="10000")


@pytest.fixture
def standin():
    server = StandIn(secret=SECRET).start()
    yield server
    server.stop()


def kinds(standin, path="/hook"):
    return [r.json["kind"] for r in list(standin.received) if r.path == path]


def test_a_running_trader_tells_its_fills_and_the_kill_switch_and_flattens(db, database_url, fake, standin, tmp_path,
                                                                           monkeypatch):
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    seed_features(db, ROWS[: FIRST + 1])
    trader = start(database_url, fake, "--accept-differences", TRADER_NOTIFY_WEBHOOK_URL=f"{standin.url}/hook",
                   TRADER_NOTIFY_WEBHOOK_SECRET_FILE=str(secret_file), TRADER_TELEGRAM_BOT_TOKEN=TOKEN,
                   TRADER_TELEGRAM_CHAT_ID="42", TRADER_TELEGRAM_API_URL=standin.url, TRADER_METRICS_PORT="0")
    try:
        wait_until(lambda: "fill" in kinds(standin) or trader.poll() is not None)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("TRADER_MODE", "testnet")
        tripped = main(["kill", "--reducing", "--reason", "drill"])  # the operator, from another shell
        wait_until(lambda: kinds(standin).count("fill") == 2 or trader.poll() is not None)
    finally:
        out = stop(trader)

    hooks = [r for r in standin.received if r.path == "/hook"]
    bots = [r for r in standin.received if r.path == f"/bot{TOKEN}/sendMessage"]
    with db.connect() as c:
        sides = c.execute(sa.text("SELECT side, status FROM trading.orders ORDER BY created_at")).fetchall()
    assert tripped == 0
    assert [(s.side, s.status) for s in sides] == [("BUY", "FILLED"), ("SELL", "FILLED")]
    assert [o["side"] for o in fake.orders()] == ["BUY", "SELL"]
    assert {"fill", "kill_switch", "kill_switch_action"} <= set(kinds(standin)) and all(h.signature_ok for h in hooks)
    assert sorted(h.json["id"] for h in hooks) == sorted(standin.accepted_ids)  # one delivery per message
    assert len(bots) == len(hooks)
    assert "trader: notifications to webhook, telegram" in out
    assert TOKEN not in out and SECRET not in out
