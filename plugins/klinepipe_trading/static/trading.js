// The Trading page: reads /klinepipe/api/* (same origin, Airflow's login cookie) and draws with lightweight-charts.
(function () {
  "use strict";
  const LC = window.LightweightCharts;
  const root = document.body.dataset.root;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 15000;
  const UNIT = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, M: 2592000 };

  const chartOptions = {
    layout: { background: { color: "#ffffff" }, textColor: "#1f2933" },
    grid: { vertLines: { color: "#f0f3f6" }, horzLines: { color: "#f0f3f6" } },
    timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#e3e8ee", rightOffset: 3 },
    // entireTextOnly: no axis label half cut at the top or bottom edge
    rightPriceScale: { borderColor: "#e3e8ee", scaleMargins: { top: 0.12, bottom: 0.12 }, entireTextOnly: true },
    autoSize: true,
  };
  const priceChart = LC.createChart($("price-chart"), chartOptions);
  const candleSeries = priceChart.addSeries(LC.CandlestickSeries, {
    upColor: "#16a34a", downColor: "#dc2626", borderVisible: false, wickUpColor: "#16a34a", wickDownColor: "#dc2626",
    lastValueVisible: false,  // its label would cover an axis label; the last close is in the card's header
  });
  const markers = LC.createSeriesMarkers(candleSeries, []);
  const equityChart = LC.createChart($("equity-chart"), chartOptions);
  const equitySeries = equityChart.addSeries(LC.LineSeries, { color: "#2563eb", lineWidth: 2, lastValueVisible: false });

  let selected = null;   // "SYMBOL:interval"
  let mode = null;       // the trader's mode the page shows (the one that ran last)
  let fittedFor = null;  // fit the time scale once per series, then keep the user's zoom
  let precision = {};    // symbol -> {price, quantity}: decimals from its tick and step size
  let canAct = false;    // the logged-in user may use the kill switch (not a read-only role)

  async function getJSON(path) {
    const res = await fetch(root + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401 || res.status === 403) { window.location.reload(); throw new Error("logged out"); }
    if (!res.ok) {  // e.g. 503 while the database is down: show the server's one-line reason; the next refresh retries
      let detail = "";
      try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
      throw new Error(typeof detail === "string" && detail ? detail : path + ": HTTP " + res.status);
    }
    return res.json();
  }

  const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2) }));
  const fixed = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
  const dp = (symbol, kind) => ((precision[symbol] || {})[kind] ?? (kind === "price" ? 2 : 8));
  const fmtPrice = (v, symbol) => fixed(v, dp(symbol, "price"));  // every price to its tick: 0.2501, not 0.25
  const fmtQty = (v, symbol) => fixed(v, dp(symbol, "quantity"));  // every quantity to its step
  const fmtTime = (t) => (t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z" : "–");
  function fmtAge(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }
  const intervalSeconds = (iv) => parseInt(iv, 10) * (UNIT[iv.slice(-1)] || 60);

  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
  function fillTable(id, rows, columns, emptyText) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(emptyText, "empty"); td.colSpan = $(id).querySelectorAll("th").length; tr.append(td); body.append(tr);
      return;
    }
    for (const r of rows) { const tr = document.createElement("tr"); for (const c of columns) tr.append(c(r)); body.append(tr); }
  }
  const signed = (v) => cell(v === null ? "–" : (v > 0 ? "+" : "") + fmt(v), "num " + (v > 0 ? "pos" : v < 0 ? "neg" : ""));
  const num = (text, cls) => cell(text, "num" + (cls ? " " + cls : ""));

  function renderOverview(o) {
    mode = o.mode;
    precision = o.precision || {};
    canAct = !!(o.user && o.user.can_act);
    $("user").textContent = o.user ? o.user.name + (canAct ? "" : " · read-only") : "";
    for (const b of document.querySelectorAll("#kill-form button")) b.disabled = !canAct;
    $("kill-reason").disabled = !canAct;
    if (!canAct) $("kill-result").textContent = "your role is read-only: the kill switch needs permission to change DAGs";
    $("mode").textContent = "mode " + o.mode;
    const ks = o.kill_switches.find((k) => k.mode === o.mode) || { state: "ACTIVE", reason: "" };
    const kill = $("kill");
    kill.textContent = "kill switch " + ks.state + (ks.reason ? " (" + ks.reason + ")" : "");
    kill.className = "badge " + (ks.state === "ACTIVE" ? "ok" : ks.state === "REDUCING" ? "warn" : "bad");
    kill.dataset.state = ks.state;
    $("kill-detail").textContent = "mode " + o.mode + " · " + ks.state + (ks.by ? " by " + ks.by : "") + (ks.reason ? ": " + ks.reason : "");
    $("kill-halt").disabled = !canAct || ks.state === "HALTED";
    $("kill-reduce").disabled = !canAct || ks.state === "REDUCING";
    $("kill-resume").disabled = !canAct || ks.state === "ACTIVE";
    fillTable("kill-events", o.operator_events || [], [(e) => cell(fmtTime(e.time)), (e) => cell(e.detail)], "no kill-switch changes yet");

    const e = o.equity;
    equitySeries.setData(e.curve);
    if (e.curve.length) fitWithMargins(equityChart, e.curve.length);
    $("pnl").textContent = e.last === null ? "no equity marks yet"
      : "equity " + fmt(e.last) + " · P&L " + (e.pnl >= 0 ? "+" : "") + fmt(e.pnl) + " (" + (e.pnl_pct * 100).toFixed(2) + "%)";
    $("pnl").className = e.pnl > 0 ? "pos" : e.pnl < 0 ? "neg" : "muted";

    // Only a streamed series is expected to be fresh: imported history is never marked stale, whatever its age.
    const late = (s, age) => s.streamed && age > Math.max(3 * intervalSeconds(s.interval), 600);
    fillTable("freshness", o.series, [
      (s) => cell(s.symbol + " " + s.interval),
      (s) => num(fmt(s.candles, 0)),
      (s) => cell(fmtTime(s.newest_open_time)),
      (s) => { const td = cell(""); const tag = document.createElement("span");
               tag.className = "tag" + (s.streamed ? " live" : ""); tag.textContent = s.streamed ? "streamed" : "history";
               tag.title = s.streamed ? "subscribed or arriving live: expected to stay fresh" : "imported or replayed history: not expected to grow";
               td.append(tag); return td; },
      (s) => num(fmtAge(s.newest_closed_age_s), late(s, s.newest_closed_age_s) ? "neg" : s.streamed ? "" : "muted"),
      (s) => num(fmtAge(s.ingest_lag_s), late(s, s.ingest_lag_s) ? "neg" : s.streamed ? "" : "muted"),
    ], "no candles stored yet");
    fillTable("positions", o.positions, [
      (p) => cell(p.sleeve),
      (p) => cell(p.halted_reason ? "HALTED (" + p.halted_reason + ")" : "active", p.halted_reason ? "neg" : ""),
      (p) => num(fmtQty(p.quantity, p.symbol)),
      (p) => num(fmtPrice(p.avg_price, p.symbol)),
      (p) => num(fmtPrice(p.last_close, p.symbol)),
      (p) => signed(p.unrealized_pnl),
      (p) => cell(p.last_decision ? fmtTime(p.last_decision.time) + " " + p.last_decision.action + " " + (p.last_decision.reason || "") : "none yet"),
    ], "no sleeves yet");
    fillTable("orders", o.open_orders, [
      (r) => cell(r.client_order_id), (r) => cell(r.mode), (r) => cell(r.sleeve), (r) => cell(r.side, r.side === "BUY" ? "buy" : "sell"),
      (r) => cell(r.type), (r) => num(fmtQty(r.quantity, r.symbol)), (r) => num(fmtPrice(r.price, r.symbol)), (r) => cell(r.status),
      (r) => num(String(r.attempts)),
      (r) => cell(fmtTime(r.created_at)),
    ], "no open orders");

    const select = $("series");
    const keys = o.series.map((s) => s.symbol + ":" + s.interval);
    if (select.options.length !== keys.length || keys.some((k, i) => select.options[i].value !== k)) {
      select.replaceChildren(...keys.map((k) => new Option(k.replace(":", " "), k)));
    }
    if (!selected || !keys.includes(selected)) {
      // the series of the sleeve that decided last (then any sleeve's), else the first series
      const bySeen = [...o.positions].sort((a, b) => ((b.last_decision || {}).time || 0) - ((a.last_decision || {}).time || 0));
      const traded = bySeen.map((p) => p.symbol + ":" + p.interval).find((k) => keys.includes(k));
      selected = traded || keys[0] || null;
    }
    if (selected) select.value = selected;
    $("updated").textContent = "updated " + fmtTime(o.now).slice(11);
  }

  // fitContent() puts the first bar on the chart's left edge, where the time axis' first label is cut in half:
  // leave a few bars of room on both sides instead.
  function fitWithMargins(chart, n) {
    if (!n) return;
    const pad = Math.max(3, Math.round(n * 0.03));
    chart.timeScale().setVisibleLogicalRange({ from: -pad, to: n - 1 + pad });
  }

  function snapToBar(times, t) {  // the open time of the bar that contains t (times ascending)
    let lo = 0, hi = times.length - 1;
    if (!times.length || t < times[0]) return null;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; }
    return times[lo];
  }

  function renderCandles(c) {
    if (c.precision) precision[c.symbol] = c.precision;
    const pp = dp(c.symbol, "price");
    candleSeries.applyOptions({ priceFormat: { type: "price", precision: pp, minMove: Math.pow(10, -pp) } });
    candleSeries.setData(c.candles.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
    const times = c.candles.map((k) => k.time);
    const marks = [], shown = [];
    for (const t of c.trades) {
      const bar = snapToBar(times, t.time);
      if (bar === null) continue;
      const buy = t.side === "BUY";
      // An arrow only: prices as text on the chart overlap candles and each other; they are in the table below.
      marks.push({ time: bar, position: buy ? "belowBar" : "aboveBar", color: buy ? "#16a34a" : "#dc2626",
                   shape: buy ? "arrowUp" : "arrowDown" });
      shown.push(t);
    }
    marks.sort((a, b) => a.time - b.time);
    markers.setMarkers(marks);
    if (fittedFor !== selected) { fitWithMargins(priceChart, c.candles.length); fittedFor = selected; }
    fillTable("trades", shown.slice(-8).reverse(), [
      (t) => cell(fmtTime(t.time)), (t) => cell(t.sleeve), (t) => cell(t.side, t.side === "BUY" ? "buy" : "sell"),
      (t) => num(fmtQty(t.quantity, c.symbol)), (t) => num(fmtPrice(t.price, c.symbol)), (t) => num(fmt(t.fee, 8) + " " + (t.fee_asset || "")),
    ], "no trades of this series' sleeves in view");
    const last = c.candles[c.candles.length - 1];
    $("last-close").textContent = last ? "last " + fmtPrice(last.close, c.symbol) + (last.closed ? "" : " (open)") : "";
    $("candle-count").textContent = String(c.candles.length);
    $("trade-count").textContent = String(marks.length);
    document.body.dataset.candles = String(c.candles.length);
    document.body.dataset.trades = String(marks.length);
  }

  async function changeKillSwitch(state) {
    const reason = $("kill-reason").value.trim();
    if (!reason) { $("kill-result").textContent = "give a reason: it is recorded with your user name"; $("kill-reason").focus(); return; }
    $("kill-result").textContent = "…";
    try {
      const res = await fetch(root + "/api/kill-switch", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ mode: mode, state: state, reason: reason }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) { $("kill-result").textContent = "refused: " + (typeof body.detail === "string" ? body.detail : "HTTP " + res.status); return; }
      $("kill-result").textContent = "kill switch " + body.state + " (" + body.mode + ") by " + body.by;
      $("kill-reason").value = "";
      document.body.dataset.killChanges = String(Number(document.body.dataset.killChanges || 0) + 1);
      await refresh();
    } catch (err) {
      $("kill-result").textContent = "failed: " + err;
    }
  }

  async function refresh() {
    try {
      renderOverview(await getJSON("/api/overview"));
      if (selected) {
        const [symbol, interval] = selected.split(":");
        renderCandles(await getJSON("/api/candles?symbol=" + encodeURIComponent(symbol) + "&interval=" + encodeURIComponent(interval) + "&limit=500&mode=" + encodeURIComponent(mode)));
      } else {
        document.body.dataset.candles = "0"; document.body.dataset.trades = "0";
      }
      $("error").hidden = true;
      document.body.dataset.ready = "1";
    } catch (err) {
      $("error").textContent = String(err); $("error").hidden = false;
    }
  }

  $("series").addEventListener("change", (ev) => { selected = ev.target.value; refresh(); });
  $("kill-form").addEventListener("submit", (ev) => ev.preventDefault());  // Enter in the reason field changes nothing
  for (const b of document.querySelectorAll("#kill-form button")) b.addEventListener("click", () => changeKillSwitch(b.dataset.state));
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
