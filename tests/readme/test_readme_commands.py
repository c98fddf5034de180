"""The README is executable: every command it shows is run here, read from ``README.md`` (``tests/readme/readme.py``).

Each command must match exactly one entry: a runner below (``@runs(pattern)``), or ``NOT_RUN`` with the reason
it is not run. A command added to the README that matches neither fails
``test_every_readme_command_is_run_or_listed``, naming it — add a runner (or, when it does not work yet, a
``NOT_RUN`` entry whose reason starts with ``pending:``).

How the commands meet the stack: the embedded PostgreSQL and tansu broker of the test session (and the fake
Binance, REST and websockets, for everything that would talk to Binance). A command that names its settings
(``DATABASE_URL=postgresql://... …``) gets the test's value in their place; the others get the stack's
settings from the environment, exported as the Configuration section documents them (``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_TOPIC``, ``STREAMING_WS_URL``, ``BINANCE_REST_URL``,
``TRADER_*``): a user types the command, the environment says where things are. The text run is the README's,
apart from the substitutions in ``SUBSTITUTE`` (placeholders a user fills in).
"""

from __future__ import annotations

import json
import re
import stat
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psutil
import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from devstack.embedded import free_port
from klinepipe.db import raw_transaction
from klinepipe.feature_store import compute_pending_features
from klinepipe.kline import parse_kline_event
from tests.fake_binance import FakeBinance
from tests.fake_binance.ws import FakeStreams
from tests.helpers import closed_events, read_topic, rolled_back, sample_rows
from tests.readme.readme import Command, read_commands
from tests.readme.shell import Started, Workdir

pytestmark = pytest.mark.integration

SLEEVE = "BTCUSDT:1m:sma_cross"
# placeholders a user replaces: (regex, what the test puts there: a function of the test's context)
SUBSTITUTE: list[tuple[str, Callable[[Context], str]]] = [
    (r"postgresql://\.\.\.", lambda ctx: ctx.database_url),
    (r"SYMBOL:interval:strategy", lambda ctx: SLEEVE),
    (r"--port 8080\b", lambda ctx: f"--port {ctx.port}"),  # 8080 is Airflow's default; another process may hold it
    (r"--file \.\.\.", lambda ctx: "--file data/sample/BTCUSDT-1m.csv.gz"),  # "a file of yours"
]

ADMIN_PASSWORD = r"python3 -c .*simple_auth_manager_passwords\.json\.generated.*"
# commands not run here, each with the reason (a regex over the whole command)
NOT_RUN: dict[str, str] = {
    r"python -m devstack": "what `make run` runs (the Makefile's `run` target), run above as `make run`: a second start "
                           "of the whole stack would test the same thing again",
    ADMIN_PASSWORD: "run by the `make run` runner, under the stack it started: the command needs a running stack",
    r"(KLINEPIPE_DRILL_OUTAGE_S=60 )?make test": "the test suite itself, of which this test is a part: it would run itself",
    r"airflow standalone|airflow api-server|airflow db migrate": "names what `make run` and the browser tests start, not a "
                                                                 "command to type",
    r"KLINEPIPE_UPDATE_DOCS=1 \.venv/bin/python -m pytest tests/\S+": "a test of the suite (`make test` runs it), asked to "
                                                                     "rewrite the pictures in docs/: not to be run from a test",
    r"\.venv/bin/python -c": "a fragment of a sentence ('or .venv/bin/python -c with SQLAlchemy'), not a command",
    r"airflow celery worker( -H loader-1@%h)?": "run by tests/airflow/test_celery_executor.py (two workers load the "
                                                "exactly-once drill); a worker serves its queue until stopped",
    r"docker compose .*": "no container engine where the project is developed and tested; docker-compose.yaml is checked "
                          "structurally by tests/unit/test_compose.py",
    r"TRADER_MODE=live python -m trader run --live": "live trading: real money and real keys; the same code path runs "
                                                     "against the fake Binance in the testnet commands",
    r"make bench|(BENCH_\w+=\S+ )*python -m bench .*": "benchmarks: minutes of both cores each; they check their own results when run "
                                      "(`make bench`), their figures are in the README",
    r"python -m trader run\|status\|kill\|resume\|reconcile\|accept-reconciliation\|backtest\|optimize\|new-strategy\|check-strategy":
        "a synopsis of the "
        "subcommands, not a command: each is run from its own line",
    r"STREAMING_DEMO_SPEED=60x make run|STREAMING_MODE=replay make run": "`make run` (run above) with one streaming setting; "
        "the demo market's speed and the historical replay are run by tests/integration/test_demo_market.py and "
        "the `streaming demo` / `streaming replay` lines here",
    r"export TRADER_STRATEGY_DIR=\S+": "the first half of the 'Write your own strategy' step 1, run with the second "
                                       "(new-strategy) by every runner of that section",
    r"DATABASE_URL=postgresql://\.\.\. \.venv/bin/python -m klinepipe\.rebuild from-topic": "needs a topic and a fresh "
        "database of its own: tests/integration/test_rebuild_from_topic.py runs this command (and `checksum`) as a "
        "process against the real broker and PostgreSQL",
    r"scripts/backfill\.py": "named in prose (the lineage of `backfill` rows); its commands are run from their own lines",
    r"python -m streaming|python -m trader|python -m trader backtest": "named in prose (the CLIs that read the running "
        "stack's connection file); tests/integration/test_connection_file.py runs each against one",
}
PENDING = {p for p, why in NOT_RUN.items() if why.startswith("pending:")}

RUNNERS: list[tuple[str, Callable]] = []


def runs(pattern: str, *, stack: bool = False):
    """Register a runner for the commands matching ``pattern`` (whole command); ``stack``: the slow tier."""
    def register(fn):
        RUNNERS.append((pattern, fn))
        fn.stack = stack
        return fn
    return register


def _unique(commands: list[Command]) -> list[Command]:
    seen: dict[str, Command] = {}
    for c in commands:
        seen.setdefault(c.text, c)
    return list(seen.values())


COMMANDS = _unique(read_commands())


def _matches(text: str) -> tuple[list[str], list[str]]:
    return ([p for p, _ in RUNNERS if re.fullmatch(p, text)], [p for p in NOT_RUN if re.fullmatch(p, text)])


# --- the context every runner gets ----------------------------------------------------------------


class Context:
    def __init__(self, work: Workdir, database_url: str, engine, bootstrap: str, topic: str) -> None:
        self.work, self.database_url, self.engine, self.bootstrap, self.topic = work, database_url, engine, bootstrap, topic
        self.port = free_port()
        self.started: list[Started] = []

    def text(self, command: str) -> str:
        for pattern, value in SUBSTITUTE:
            command = re.sub(pattern, lambda _m: value(self), command)
        return command

    def run(self, command: str, timeout: float = 180, **env: str):
        return self.work.run(self.text(command), timeout=timeout, **env)

    def start(self, command: str, unset: tuple[str, ...] = (), **env: str) -> Started:
        proc = self.work.start(self.text(command), unset, **env)
        self.started.append(proc)
        return proc

    def sql(self, query: str, **params):
        with self.engine.connect() as c:
            return c.execute(sa.text(query), params).fetchall()

    def kill_state(self, mode: str = "paper") -> tuple[str, str]:
        from trader import account_records

        with rolled_back(self.engine) as cur:
            switch = account_records.kill_state(cur, mode)
            return switch.state.value, switch.reason

    def count(self, query: str, **params) -> int:
        return self.sql(query, **params)[0][0]

    def seed_candles(self, rows: list[list[str]], symbol: str = "BTCUSDT", interval: str = "1m", features: bool = True) -> None:
        with raw_transaction(self.engine) as cur:
            for i in range(0, len(rows), 20_000):
                events = closed_events(rows[i:i + 20_000], symbol, interval)
                stage_and_merge(cur, [(parse_kline_event(e), "replay") for e in events])
        if features:
            compute_pending_features(self.engine)


@pytest.fixture
def ctx(tmp_path, database_url, engine, kafka_bootstrap, topic):
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE trading.events, trading.equity, trading.reconciliations RESTART IDENTITY")
    work = Workdir(tmp_path, {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                              "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq", "STREAMING_METRICS_PORT": "0",
                              "TRADER_METRICS_PORT": "0", "KLINEPIPE_DATA_DIR": str(tmp_path / "checkout" / ".data")})
    context = Context(work, database_url, engine, kafka_bootstrap, topic)
    yield context
    for proc in context.started:
        proc.kill()


# --- the two checks -------------------------------------------------------------------------------


def test_every_readme_command_is_run_or_listed():
    assert len(COMMANDS) > 20, "the README parser found almost nothing: is README.md where it was?"
    problems = []
    for c in COMMANDS:
        runners, listed = _matches(c.text)
        if len(runners) + len(listed) != 1:
            problems.append(f"README.md:{c.line} ({c.section}): {c.text!r} matches runners {runners} and NOT_RUN {listed}")
    assert not problems, ("each README command needs exactly one runner in tests/readme/test_readme_commands.py, or an entry in "
                          "NOT_RUN saying why it is not run ('pending: …' while it does not work yet):\n" + "\n".join(problems))


def test_every_entry_still_has_a_command_in_the_readme():
    """A runner or reason for a command the README no longer has is dead weight (anticipated 'pending' ones excepted)."""
    texts = [c.text for c in COMMANDS]
    unused = [p for p, _ in RUNNERS if not any(re.fullmatch(p, t) for t in texts)]
    unused += [p for p in NOT_RUN if p not in PENDING and not any(re.fullmatch(p, t) for t in texts)]
    assert not unused, f"no README command matches these entries any more: {unused}"


def _params():
    out = []
    for c in COMMANDS:
        runners, _ = _matches(c.text)
        if len(runners) == 1:
            fn = dict(RUNNERS)[runners[0]]
            out.append(pytest.param(c, fn, id=c.id, marks=[pytest.mark.stack] if fn.stack else []))
    return out


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_readme_command":
        metafunc.parametrize(("command", "runner"), _params())


def test_readme_command(command: Command, runner, ctx: Context):
    runner(command.text, ctx)


# --- runners: the quickstart ----------------------------------------------------------------------


def _make_run(ctx: Context, cmd: str = "make run") -> Started:
    """``make run`` (or what it runs) on embedded defaults, up to its banner; none of the test stack's settings."""
    proc = ctx.start(cmd, unset=("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_DLQ_TOPIC"),
                     AIRFLOW_PORT=str(free_port()), STREAMING_MODE="replay", STREAMING_REPLAY_SPEED="600x")
    proc.wait_for(r"klinepipe is running", 420)
    return proc


@runs(r"make run", stack=True)
def run_make_run(cmd: str, ctx: Context):
    """Run briefly: the stack comes up on embedded defaults and says so; the README's admin-password command
    prints the password the banner points to, and it logs in; Ctrl-C leaves nothing behind."""
    proc = _make_run(ctx, cmd)
    try:
        (password_command,) = {c.text for c in COMMANDS if re.fullmatch(ADMIN_PASSWORD, c.text)}
        _check_admin_password(password_command, proc, ctx)
        family = [psutil.Process(proc.proc.pid), *psutil.Process(proc.proc.pid).children(recursive=True)]
    finally:
        proc.interrupt(timeout=120)
    time.sleep(1)
    left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    left += [p for p in psutil.process_iter() if str(ctx.work.path) in " ".join(_cmdline(p))]
    assert not left, [_cmdline(p) for p in left]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _check_admin_password(cmd: str, proc: Started, ctx: Context) -> None:
    """Under a running ``make run``, ``cmd`` prints the admin password the banner points to (and that logs in)."""
    import urllib.request

    done = ctx.run(cmd)
    assert done.returncode == 0 and done.stdout.strip(), done.stdout
    url = proc.wait_for(r"Airflow UI : (http://\S+)", 5).group(1)
    body = json.dumps({"username": "admin", "password": done.stdout.strip()}).encode()
    request = urllib.request.Request(f"{url}/auth/token", body, {"Content-Type": "application/json"})
    assert proc.until(lambda: _login(request), 240, "an answer from the Airflow UI")  # the banner comes first


def _login(request) -> str | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r).get("access_token")
    except urllib.error.HTTPError:
        raise
    except OSError:
        return None  # not listening yet


@runs(r"make clean-data")
def run_clean_data(cmd: str, ctx: Context):
    """Deletes ``.data/`` (the default place), and only that."""
    (ctx.work.path / ".data" / "pg").mkdir(parents=True)
    (ctx.work.path / ".data" / "pg" / "PG_VERSION").write_text("16\n")
    elsewhere = ctx.work.home / "klinepipe-data"
    elsewhere.mkdir()

    done = ctx.run(cmd, KLINEPIPE_DATA_DIR=str(elsewhere))

    assert done.returncode == 0, done.stdout
    assert not (ctx.work.path / ".data").exists() and elsewhere.exists()


@runs(r"SELECT .*")
def run_sql(query: str, ctx: Context):
    """Every query of the README runs on the pipeline's schema; on a pipeline that traded, the quickstart's return rows."""
    ctx.seed_candles(sample_rows(300))
    _paper_trader(ctx).interrupt()
    rows = ctx.sql(query)
    if "FROM market." in query or "FROM trading.orders" in query:
        assert rows, query


def _paper_trader(ctx: Context, until: str = r"filled @") -> Started:
    proc = ctx.start("python -m trader run", TRADER_SLEEVES=SLEEVE)
    proc.wait_for(until, 90)
    return proc


# --- runners: streaming -----------------------------------------------------------------------------


def _topic_count(ctx: Context) -> int:
    """About how many messages the topic holds now, from the partitions' watermarks: reading a topic that keeps
    growing to its end would not return while the command is still publishing. (The broker's offsets need not
    count messages one by one, so this is only for "some have arrived"; exact counts read the topic.)"""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": "readme-count", "enable.auto.commit": False})
    try:
        parts = c.list_topics(ctx.topic, timeout=10).topics[ctx.topic].partitions
        marks = [c.get_watermark_offsets(TopicPartition(ctx.topic, p), timeout=10) for p in parts]
        return sum(high - low for low, high in marks)
    finally:
        c.close()


@runs(r"\.venv/bin/python -m streaming replay --file (\S+) --speed max")
def run_replay_max(cmd: str, ctx: Context):
    """Replays the whole file into the topic and exits 0."""
    name = re.search(r"--file (\S+)", cmd).group(1)
    expected = sum(1 for line in (ctx.work.path / name).read_text().splitlines()[1:] if line.strip())

    done = ctx.run(cmd)

    assert done.returncode == 0, done.stdout
    assert f"published={expected} acked={expected} dead_lettered=0" in done.stdout, done.stdout
    assert len(read_topic(ctx.bootstrap, ctx.topic)) == expected


@runs(r"(?:\.venv/bin/)?python -m streaming replay(?: --file \S+)?(?: --speed \d+x)?")
def run_replay_paced(cmd: str, ctx: Context):
    """At 60x (the default speed) a 1m candle a second, a 1h candle a minute: run briefly, until one is published;
    Ctrl-C stops it cleanly."""
    proc = ctx.start(cmd)
    proc.until(lambda: _topic_count(ctx) >= 1, 150, "a message in the topic")
    assert proc.interrupt() == 0, proc.output
    assert "stopped; published=" in proc.output


@runs(r"\.venv/bin/python -m streaming demo --speed \d+x")
def run_demo_market(cmd: str, ctx: Context):
    """The demo market: the bundled candles on the present's clock (its warm-up history at once), said plainly on
    screen; Ctrl-C stops it cleanly."""
    proc = ctx.start(cmd, STREAMING_DEMO_HISTORY="5")
    proc.until(lambda: _topic_count(ctx) >= 1, 150, "a message in the topic")
    assert proc.interrupt() == 0, proc.output
    assert "DEMO MARKET BTCUSDT 1m, not live prices" in proc.output and "source=demo" in proc.output, proc.output


@runs(r"make status|\.venv/bin/python -m devstack status")
def run_status(cmd: str, ctx: Context):
    """Against the test's PostgreSQL and broker (set, as another shell would have them): each part, the newest
    candle of each series, exit 0."""
    ctx.seed_candles(sample_rows(50))
    done = ctx.run(cmd)
    assert done.returncode == 0, done.stdout
    assert "BTCUSDT" in done.stdout and "Traceback" not in done.stdout, done.stdout


def _streams(ctx: Context):
    rest = FakeBinance().start()
    ws = FakeStreams(step_ms=15_000, tick=0.05, on_close=rest.seed_klines).start()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        rest.add_symbol(symbol, symbol[:-4], "USDT")
    return rest, ws, {"STREAMING_WS_URL": ws.url, "BINANCE_REST_URL": rest.url}


@runs(r"\.venv/bin/python -m streaming live .*|\.venv/bin/python -m streaming")
def run_live(cmd: str, ctx: Context):
    """Live (or auto, which goes live when Binance answers) against the fake Binance: frames reach the topic;
    Ctrl-C flushes and exits 0."""
    rest, ws, env = _streams(ctx)
    try:
        proc = ctx.start(cmd, **env)
        proc.until(lambda: _topic_count(ctx) >= 4, 60, "4 messages in the topic")
        code = proc.interrupt()
    finally:
        ws.stop()
        rest.stop()
    assert code == 0, proc.output
    assert "source=live" in proc.output and "stopped; published=" in proc.output, proc.output
    keys = {k.decode() for k, _, _ in read_topic(ctx.bootstrap, ctx.topic)}
    wanted = set(re.search(r"--symbols (\S+)", cmd).group(1).split(",")) if "--symbols" in cmd else {"BTCUSDT"}
    if "--universe" in cmd:
        wanted = {"BTCUSDT", "ETHUSDT"}  # every TRADING *USDT symbol of the fake exchange
    assert {k.split(":")[0] for k in keys} == wanted, keys


@runs(r"\.venv/bin/python -m streaming record .* --out (\S+)")
def run_record(cmd: str, ctx: Context):
    """Records raw frames from the fake Binance into the file named, one JSON object a line."""
    out = ctx.work.path / re.search(r"--out (\S+)", cmd).group(1)
    rest, ws, env = _streams(ctx)
    try:
        proc = ctx.start(cmd, **env)
        proc.until(lambda: out.exists() and len(out.read_bytes().splitlines()) >= 3, 60, f"3 frames in {out.name}")
        code = proc.interrupt()
    finally:
        ws.stop()
        rest.stop()
    assert code == 0, proc.output
    assert all(json.loads(line)["stream"].startswith("btcusdt@kline_1s") for line in out.read_bytes().splitlines())


# --- runners: the trader ------------------------------------------------------------------------------


@runs(r"DATABASE_URL=postgresql://\.\.\. \.venv/bin/python -m trader run")
def run_paper_trader(cmd: str, ctx: Context):
    """Paper trading on stored features: orders and their fills (at the next open) on the console, in the ledger."""
    rows = sample_rows(300)
    ctx.seed_candles(rows)
    proc = ctx.start(cmd, DATABASE_URL="")  # the command names its database itself
    proc.wait_for(r"trader: mode=PAPER", 60)
    fill = proc.wait_for(r"trader: \S+ \S+ BTCUSDT:1m:sma_cross (BUY|SELL) (\S+) filled @ (\S+)", 90)
    assert proc.interrupt() == 0, proc.output
    assert "trader: stopped" in proc.output
    (price,) = ctx.sql("SELECT price FROM trading.fills ORDER BY filled_at LIMIT 1")[0]
    assert Decimal(fill.group(3)) == price


@runs(r"python -m trader \w+(?:\|\w+)+")
def run_trader_synopsis(cmd: str, ctx: Context):
    """The synopsis ('`--help` on each'): every sub-command named has its help."""
    for sub in cmd.split()[-1].split("|"):
        done = ctx.run(f"python -m trader {sub} --help")
        assert done.returncode == 0 and f"python -m trader {sub}" in done.stdout, done.stdout


@runs(r"python -m trader status")
def run_trader_status(cmd: str, ctx: Context):
    ctx.seed_candles(sample_rows(300))
    _paper_trader(ctx).interrupt()

    done = ctx.run(cmd)

    assert done.returncode == 0, done.stdout
    assert "kill switch: ACTIVE" in done.stdout and f"{SLEEVE}: active" in done.stdout, done.stdout


@runs(r'python -m trader kill \[--reducing\] --reason "\.\.\."')
def run_kill(cmd: str, ctx: Context):
    """Both forms of the synopsis: HALTED, and REDUCING with ``--reducing``; the reason is recorded."""
    for form, state in ((cmd.replace("[--reducing] ", ""), "HALTED"), (cmd.replace("[--reducing]", "--reducing"), "REDUCING")):
        done = ctx.run(form, TRADER_MODE="paper")
        assert done.returncode == 0 and f"kill switch {state}" in done.stdout, done.stdout
        assert ctx.kill_state() == (state, "...")
        assert "kill switch: " + state in ctx.run("python -m trader status").stdout


@runs(r'python -m trader resume --reason "\.\.\."')
def run_resume(cmd: str, ctx: Context):
    assert ctx.run('python -m trader kill --reason "drill"').returncode == 0

    done = ctx.run(cmd)

    assert done.returncode == 0 and "kill switch ACTIVE" in done.stdout, done.stdout
    assert ctx.kill_state()[0] == "ACTIVE"


@runs(r"python -m trader resume --sleeve SYMBOL:interval:strategy")
def run_resume_sleeve(cmd: str, ctx: Context):
    from trader import sleeve_records

    with raw_transaction(ctx.engine) as cur:
        sleeve_records.ensure_sleeve(cur, "paper", SLEEVE, "BTCUSDT", "1m", "sma_cross")
        sleeve_records.halt_sleeve(cur, "paper", SLEEVE, "strategy error: drill")

    done = ctx.run(cmd)

    assert done.returncode == 0 and f"sleeve {SLEEVE} resumed" in done.stdout, done.stdout
    assert ctx.sql("SELECT halted_reason FROM trading.sleeves WHERE sleeve = :s", s=SLEEVE) == [(None,)]


def _testnet(ctx: Context):
    """The fake Binance as the testnet, with the keys it prints, and the environment the README's testnet lines set."""
    rest = FakeBinance().start()
    rest.add_symbol("BTCUSDT", "BTC", "USDT")
    rest.seed_klines("BTCUSDT", "1m", sample_rows(300))
    rest.deposit("USDT", "10000")
    env = {"TRADER_MODE": "testnet", "BINANCE_API_KEY": rest.api_key, "BINANCE_API_SECRET": rest.api_secret,
           "TRADER_BINANCE_REST_URL": rest.url, "TRADER_STALENESS_BASIS": "ingested_at"}
    return rest, env


@runs(r"python -m trader reconcile")
def run_reconcile(cmd: str, ctx: Context):
    """A fresh ledger against an account holding 10,000 USDT: the difference is shown, exit code 3."""
    rest, env = _testnet(ctx)
    try:
        done = ctx.run(cmd, **env)
    finally:
        rest.stop()
    assert done.returncode == 3, done.stdout
    assert "USDT" in done.stdout and "trader: reconcile: 1 difference(s)" in done.stdout, done.stdout


@runs(r"python -m trader accept-reconciliation")
def run_reconcile_accept(cmd: str, ctx: Context):
    rest, env = _testnet(ctx)
    try:
        done = ctx.run(cmd, **env)
        again = ctx.run("python -m trader reconcile", **env)
    finally:
        rest.stop()
    assert done.returncode == 0 and "accepted" in done.stdout, done.stdout
    assert again.returncode == 0 and "0 difference(s)" in again.stdout, again.stdout


@runs(r"python -m trader run")
def run_testnet_trader(cmd: str, ctx: Context):
    """The testnet line's last step, against the fake Binance: after ``reconcile --accept`` it trades there."""
    ctx.seed_candles(sample_rows(300))
    rest, env = _testnet(ctx)
    try:
        assert ctx.run("python -m trader reconcile --accept", **env).returncode == 0
        proc = ctx.start(cmd, **env, TRADER_SLEEVES=SLEEVE)
        proc.wait_for(r"trader: mode=TESTNET", 60)
        proc.wait_for(r"BTCUSDT:1m:sma_cross (BUY|SELL) \S+ filled @ ", 90)
        code = proc.interrupt()
        orders = rest.orders("BTCUSDT")
    finally:
        rest.stop()
    assert code == 0, proc.output
    assert orders and all(o["clientOrderId"].startswith("kp-") for o in orders)


@runs(r"python -m tests\.fake_binance --port 8080")
def run_fake_binance(cmd: str, ctx: Context):
    """Serves the REST API and prints the key and secret to use."""
    import urllib.request

    proc = ctx.start(cmd)
    m = proc.wait_for(r"fake binance REST on (http://\S+/api)\s+key=(\S+) secret=(\S+)", 60)
    with urllib.request.urlopen(f"{m.group(1)}/v3/exchangeInfo?symbol=BTCUSDT", timeout=10) as r:
        assert json.load(r)["symbols"][0]["symbol"] == "BTCUSDT"
    proc.interrupt()


# --- runners: backtests -----------------------------------------------------------------------------


def _reports(ctx: Context) -> list:
    return sorted((ctx.work.path / ".data" / "reports").glob("*/summary.json"))


@runs(r"\.venv/bin/python -m trader backtest --csv .*")
def run_backtest_csv(cmd: str, ctx: Context):
    """Writes its report directory under .data/reports/ and prints the summary table."""
    done = ctx.run(cmd, timeout=300)

    assert done.returncode == 0, done.stdout
    (summary,) = _reports(ctx)
    data = json.loads(summary.read_text())
    assert data["bars"] > 1000 and "total return" in done.stdout and f"output: {summary.parent}" in done.stdout
    assert {p.name for p in summary.parent.iterdir()} >= {"trades.csv", "equity.csv", "report.html", "equity.png"}
    if "--sweep" in cmd:
        assert (summary.parent / "sweep.csv").exists() and (summary.parent / "walk_forward.csv").exists()
    if "--stop-loss" in cmd:  # the live trader's stop model (issue 16)
        assert data["fill_model"]["stops"] == {"stop_pct": 2.0, "take_profit_pct": 4.0, "trailing_pct": None, "tick": 0.01,
                                               "stop_atr": None, "take_profit_atr": None}


@runs(r"\.venv/bin/python -m trader optimize --csv .*")
def run_optimize_csv(cmd: str, ctx: Context):
    """Studies in $DATABASE_URL's schema optuna; the folds, the verdict and the report directory; the same command
    again resumes the study (its trials add up)."""
    done = ctx.run(cmd, timeout=300)

    assert done.returncode == 0, done.stdout
    (summary,) = _reports(ctx)
    data = json.loads(summary.read_text())
    assert "best parameters:" in done.stdout and data["best_params"] and f"output: {summary.parent}" in done.stdout
    assert {"report.html", "trials.csv", "folds.csv"} <= {p.name for p in summary.parent.iterdir()}
    if "--study" in cmd:
        again = ctx.run(cmd, timeout=300)
        assert again.returncode == 0, again.stdout
        last = json.loads(_reports(ctx)[-1].read_text())
        assert [f["trials"] for f in last["folds"]] == [2 * f["trials"] for f in data["folds"]]


@runs(r"\.venv/bin/python -m trader backtest --symbol (\S+) --interval (\S+) --start (\S+) --end (\S+)")
def run_backtest_db(cmd: str, ctx: Context):
    """From market.candles at $DATABASE_URL: exactly the stored candles of the range."""
    start, end = re.search(r"--start (\S+) --end (\S+)", cmd).groups()
    rows = sample_rows(31_000)
    ctx.seed_candles(rows, features=False)
    in_range = ctx.count("SELECT count(*) FROM market.candles WHERE open_time >= :a AND open_time < :b", a=start, b=end)
    assert in_range > 1000  # the bundled 1m history covers the README's range

    done = ctx.run(cmd, timeout=300)

    assert done.returncode == 0, done.stdout
    (summary,) = _reports(ctx)
    assert json.loads(summary.read_text())["bars"] == in_range


# --- runners: write your own strategy ------------------------------------------------------------------

_STRATEGY_STEPS = r"export TRADER_STRATEGY_DIR=\S+|\.venv/bin/python -m trader new-strategy (\w+)"


def _new_strategy(ctx: Context) -> tuple[str, dict[str, str]]:
    """The section's first step, as typed: the strategy's name and the environment it leaves."""
    export, new = (c.text for c in COMMANDS if c.section == "Write your own strategy" and re.fullmatch(_STRATEGY_STEPS, c.text))
    done = ctx.run(f"{export} && {new} && echo \"dir=$TRADER_STRATEGY_DIR\"")
    assert done.returncode == 0 and "wrote" in done.stdout, done.stdout
    return new.split()[-1], {"TRADER_STRATEGY_DIR": re.search(r"dir=(\S+)", done.stdout).group(1)}


@runs(r"\.venv/bin/python -m trader new-strategy \w+")
def run_new_strategy(cmd: str, ctx: Context):
    """Writes the strategy and its test into the directory the export names (under the home), and never over them."""
    name, env = _new_strategy(ctx)
    assert env["TRADER_STRATEGY_DIR"].startswith(str(ctx.work.home))
    again = ctx.run(f"python -m trader new-strategy {name}", **env)
    assert again.returncode == 2 and "not overwriting" in again.stdout, again.stdout


@runs(r"\.venv/bin/python -m pytest \$TRADER_STRATEGY_DIR")
def run_strategy_tests(cmd: str, ctx: Context):
    _, env = _new_strategy(ctx)
    done = ctx.run(cmd, **env)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout


@runs(r"\.venv/bin/python -m trader check-strategy (\w+) .*")
def run_check_strategy(cmd: str, ctx: Context):
    """With the optional ``--params`` (``--csv FILE`` left out: the bundled sample): no problems found, exit 0."""
    _, env = _new_strategy(ctx)
    done = ctx.run(re.sub(r"\[--csv FILE\]", "", cmd).replace("[", "").replace("]", ""), **env)
    assert done.returncode == 0 and "no problems found" in done.stdout and "slow=50" in done.stdout, done.stdout


@runs(r"\.venv/bin/python -m trader backtest --strategy \w+ .*")
def run_backtest_user_strategy(cmd: str, ctx: Context):
    _, env = _new_strategy(ctx)
    done = ctx.run(cmd, timeout=300, **env)
    assert done.returncode == 0 and "total return" in done.stdout, done.stdout
    (summary,) = _reports(ctx)
    assert json.loads(summary.read_text())["params"] == {"fast": 10, "slow": 50, "min_gap_bps": 0.0}


@runs(r"TRADER_SLEEVES=BTCUSDT:1m:(\w+) TRADER_STRATEGY_PARAMS='[^']*' \.venv/bin/python -m trader run")
def run_user_strategy_on_paper(cmd: str, ctx: Context):
    """The user's strategy trades on paper over stored features: its fills on the console and in the ledger."""
    name, env = _new_strategy(ctx)
    ctx.seed_candles(sample_rows(400))
    proc = ctx.start(cmd, **env, TRADER_STALE_INTERVALS="0", TRADER_MAX_ORDERS_PER_MINUTE="0")
    proc.wait_for(rf"trader: sleeves=BTCUSDT:1m:{name} \(1000 fast=10 slow=50 min_gap_bps=0.0\)", 60)
    proc.wait_for(rf"BTCUSDT:1m:{name} (BUY|SELL) \S+ filled @ ", 90)
    assert proc.interrupt() == 0, proc.output
    assert ctx.count("SELECT count(*) FROM trading.fills f JOIN trading.orders o USING (client_order_id)"
                     " WHERE o.sleeve = :s", s=f"BTCUSDT:1m:{name}") >= 1


# --- runners: Docker Compose's helper, history loads ----------------------------------------------------


@runs(r"scripts/make-env\.sh")
def run_make_env(cmd: str, ctx: Context):
    """Writes .env (0600) from .env.example with fresh secrets, prints the admin login; refuses to overwrite."""
    done = ctx.run(cmd)
    again = ctx.run(cmd)

    env = ctx.work.path / ".env"
    assert done.returncode == 0 and "Airflow login admin / " in done.stdout, done.stdout
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    example = dict(line.split("=", 1) for line in (ctx.work.path / ".env.example").read_text().splitlines() if "=" in line)
    written = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
    assert written.keys() == example.keys() and written["AIRFLOW_JWT_SECRET"] != example["AIRFLOW_JWT_SECRET"]
    assert again.returncode == 1 and "not overwriting" in again.stdout


@runs(r"DATABASE_URL=postgresql://\.\.\. \.venv/bin/python scripts/backfill\.py history .*")
def run_history(cmd: str, ctx: Context):
    """Every closed candle of each symbol in [start, end) from the (fake) Binance REST API."""
    symbols = re.search(r"--symbols (\S+)", cmd).group(1).split(",")
    interval = re.search(r"--interval (\S+)", cmd).group(1)
    start, end = (datetime.fromisoformat(x).replace(tzinfo=timezone.utc) for x in re.search(r"--start (\S+) --end (\S+)", cmd).groups())
    hourly = [r for r in sample_rows(10_000, "BTCUSDT-1h.csv")]
    assert interval == "1h" and int(hourly[0][0]) <= start.timestamp() * 1000 and int(hourly[-1][0]) >= end.timestamp() * 1000
    with FakeBinance() as rest:
        for s in symbols:
            rest.add_symbol(s, s[:-4], "USDT")
            rest.seed_klines(s, interval, hourly)  # the bundled BTCUSDT hours stand in for every symbol
        done = ctx.run(cmd, DATABASE_URL="", BINANCE_REST_URL=rest.url, timeout=300)
    assert done.returncode == 0, done.stdout
    expected = int((end - start) / timedelta(hours=1))
    got = dict(ctx.sql("SELECT symbol, count(*) FROM market.candles WHERE is_closed AND source = 'backfill' GROUP BY 1"))
    assert got == {s: expected for s in symbols}, (got, done.stdout)


@runs(r"(?:\.venv/bin/python )?scripts/backfill\.py gaps(?: --days \d+)?")
def run_gaps(cmd: str, ctx: Context):
    """Missing closed candles between stored ones of the last days are fetched and stored."""
    now = int(time.time() // 60 * 60 * 1000)
    rows = []
    for i, r in enumerate(sample_rows(180)):  # the bundled candles, moved to the last three hours
        shifted = list(r)
        shifted[0], shifted[6] = str(now - (180 - i) * 60_000), str(now - (180 - i) * 60_000 + 59_999)
        rows.append(shifted)
    ctx.seed_candles(rows[:100] + rows[110:], features=False)
    with FakeBinance() as rest:
        rest.add_symbol("BTCUSDT", "BTC", "USDT")
        rest.seed_klines("BTCUSDT", "1m", rows)
        done = ctx.run(cmd, BINANCE_REST_URL=rest.url, timeout=300)
    assert done.returncode == 0, done.stdout
    assert "1 gap(s)" in done.stdout, done.stdout
    assert ctx.count("SELECT count(*) FROM market.candles WHERE symbol = 'BTCUSDT'") == 180


@runs(r"\.venv/bin/python scripts/backfill\.py files ~/Downloads/BTCUSDT-1m-2024-\*\.zip")
def run_files(cmd: str, ctx: Context):
    """data.binance.vision monthly zips in ~/Downloads (no header, as Binance ships them) are imported."""
    rows = sample_rows(31_000)
    downloads = ctx.work.home / "Downloads"
    downloads.mkdir()
    months: dict[str, list[str]] = {}
    for r in rows:
        month = datetime.fromtimestamp(int(r[0]) / 1000, timezone.utc).strftime("%Y-%m")
        months.setdefault(month, []).append(",".join(r))
    for month, lines in months.items():
        with zipfile.ZipFile(downloads / f"BTCUSDT-1m-{month}.zip", "w") as z:
            z.writestr(f"BTCUSDT-1m-{month}.csv", "\n".join(lines) + "\n")

    done = ctx.run(cmd, timeout=300)

    assert done.returncode == 0, done.stdout
    assert ctx.count("SELECT count(*) FROM market.candles WHERE symbol = 'BTCUSDT' AND interval = '1m'") == len(rows)


@runs(r"scripts/ensure-chromium\.sh")
def run_ensure_chromium(cmd: str, ctx: Context):
    """`make test` runs it first: it makes sure Debian's chromium is there (installing it only when missing)."""
    done = ctx.run(cmd, timeout=600)

    assert done.returncode == 0, done.stdout
    assert ctx.run("command -v chromium || command -v chromium-browser").returncode == 0
