"""``python -m trader status``: positions, P&L, kill-switch state, open orders, last decision per sleeve, the
notification outbox, events."""

from __future__ import annotations

from decimal import Decimal

from trader import account_records, order_records, stream_records


def render_status(cur, mode: str, quote: str) -> str:
    switch = account_records.kill_state(cur, mode)
    lines = [f"mode: {mode}", f"kill switch: {switch.state.value}" + (f" ({switch.reason})" if switch.reason else "")]
    cur.execute("SELECT equity FROM trading.equity WHERE mode = %s ORDER BY at LIMIT 1", (mode,))
    first = cur.fetchone()
    cur.execute("SELECT at, equity FROM trading.equity WHERE mode = %s ORDER BY at DESC LIMIT 1", (mode,))
    last = cur.fetchone()
    if first and last:
        pnl = last[1] - first[0]
        lines.append(f"equity: {last[1]:.2f} {quote} at {last[0]:%Y-%m-%d %H:%M}; P&L since start {pnl:+.2f} ({pnl / first[0]:+.2%})")
    lines.append("balances: " + (", ".join(f"{a}={v.normalize()}" for a, v in account_records.balances(cur, mode).items()) or "none"))
    lines.append("sleeves:")
    cur.execute(
        """SELECT s.sleeve, p.quantity, p.avg_price, s.halted_reason, g.open_time, g.action, g.reason
           FROM trading.sleeves s JOIN trading.positions p USING (mode, sleeve)
           LEFT JOIN LATERAL (SELECT open_time, action, reason FROM trading.signals x WHERE x.mode = s.mode AND x.sleeve = s.sleeve
                              ORDER BY open_time DESC LIMIT 1) g ON true WHERE s.mode = %s ORDER BY s.sleeve""", (mode,))
    for sleeve, qty, avg, halted, t, action, why in cur.fetchall():
        state_txt = f"HALTED ({halted})" if halted else "active"
        last_txt = f"last decision {t:%Y-%m-%d %H:%M} {action} {why}".rstrip() if t else "no decision yet"
        lines.append(f"  {sleeve}: {state_txt}; position {Decimal(qty).normalize()} @ {Decimal(avg):.2f}; {last_txt}")
    open_orders = order_records.open_orders(cur, mode)
    lines.append(f"open orders: {len(open_orders)}")
    lines += [f"  {i.client_order_id} {i.side} {i.quantity} {i.symbol} {status} attempts={n}" for i, status, n in open_orders]
    legs = order_records.open_orders(cur, mode, protection=True)
    if legs:  # stops and take-profits held by the exchange for open positions (trader.protector)
        lines.append(f"protection orders: {len(legs)}")
        lines += [f"  {i.client_order_id} {i.type} {i.side} {i.quantity} {i.symbol} stop {i.stop_price or f'trailing {i.trailing_delta} bips'}"
                  f" {status}" for i, status, _ in legs]
    if mode != "paper":
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
        lines.append(stream_records.describe(stream_records.stream_state(cur, mode), now))
    cur.execute("SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM trading.notification_deliveries d"
                " WHERE d.notification_id = n.id AND d.delivered_at IS NOT NULL)), max(n.created_at) FROM trading.notifications n"
                " WHERE n.mode = %s AND n.created_at > now() - interval '1 day'", (mode,))
    undelivered, newest = cur.fetchone()
    lines.append(f"notifications (last 24 h): {undelivered} not delivered to any channel yet"
                 + (f"; newest {newest:%Y-%m-%d %H:%M:%S}" if newest else "; none"))
    cur.execute("SELECT at, kind, coalesce(sleeve, ''), coalesce(rule, ''), detail FROM trading.events WHERE mode = %s"
                " ORDER BY id DESC LIMIT 10", (mode,))
    events = cur.fetchall()
    lines.append(f"recent events: {len(events)}")
    lines += [f"  {at:%Y-%m-%d %H:%M:%S} {kind} {sleeve} {rule} {detail}".replace("  ", " ") for at, kind, sleeve, rule, detail in events]
    return "\n".join(lines)
