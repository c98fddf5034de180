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
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { borderColor: "#e3e8ee" },
    autoSize: true,
  };
  const priceChart = LC.createChart($("price-chart"), chartOptions);
  const candleSeries = priceChart.addSeries(LC.CandlestickSeries, {
    upColor: "#16a34a", downColor: "#dc2626", borderVisible: false, wickUpColor: "#16a34a", wickDownColor: "#dc2626",
  });
  const markers = LC.createSeriesMarkers(candleSeries, []);
  const equityChart = LC.createChart($("equity-chart"), chartOptions);
  const equitySeries = equityChart.addSeries(LC.LineSeries, { color: "#2563eb", lineWidth: 2 });

  let selected = null;   // "SYMBOL:interval"
  let mode = null;       // the trader's mode the page shows (the one that ran last)
  let fittedFor = null;  // fit the time scale once per series, then keep the user's zoom

  async function getJSON(path) {
    const res = await fetch(root + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401 || res.status === 403) { window.location.reload(); throw new Error("logged out"); }
    if (!res.ok) throw new Error(path + ": HTTP " + res.status);
    return res.json();
  }

  const fmt = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2) }));
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
  const signed = (v) => cell(v === null ? "–" : (v > 0 ? "+" : "") + fmt(v), v > 0 ? "pos" : v < 0 ? "neg" : "");

  function renderOverview(o) {
    mode = o.mode;
    $("mode").textContent = "mode " + o.mode;
    const ks = o.kill_switches.find((k) => k.mode === o.mode) || { state: "ACTIVE", reason: "" };
    const kill = $("kill");
    kill.textContent = "kill switch " + ks.state + (ks.reason ? " (" + ks.reason + ")" : "");
    kill.className = "badge " + (ks.state === "ACTIVE" ? "ok" : ks.state === "REDUCING" ? "warn" : "bad");
    kill.dataset.state = ks.state;

    const e = o.equity;
    equitySeries.setData(e.curve);
    if (e.curve.length) equityChart.timeScale().fitContent();
    $("pnl").textContent = e.last === null ? "no equity marks yet"
      : "equity " + fmt(e.last) + " · P&L " + (e.pnl >= 0 ? "+" : "") + fmt(e.pnl) + " (" + (e.pnl_pct * 100).toFixed(2) + "%)";
    $("pnl").className = e.pnl > 0 ? "pos" : e.pnl < 0 ? "neg" : "muted";

    const replayed = o.series.filter((s) => s.replayed).map((s) => s.symbol + " " + s.interval);
    $("replay-notice").hidden = !replayed.length;  // the demo market (or a replay) is not the live market: say so
    $("replay-notice").textContent = "replayed data, not live prices: " + replayed.join(", ");
    fillTable("freshness", o.series, [
      (s) => cell(s.symbol + " " + s.interval),
      (s) => cell(fmt(s.candles, 0)),
      (s) => cell(fmtTime(s.newest_open_time)),
      (s) => cell(fmtAge(s.newest_closed_age_s), s.newest_closed_age_s > 3 * intervalSeconds(s.interval) ? "neg" : ""),
      (s) => cell(fmtAge(s.ingest_lag_s), s.ingest_lag_s > 3 * intervalSeconds(s.interval) ? "neg" : ""),
    ], "no candles stored yet");
    fillTable("positions", o.positions, [
      (p) => cell(p.sleeve),
      (p) => cell(p.halted_reason ? "HALTED (" + p.halted_reason + ")" : "active", p.halted_reason ? "neg" : ""),
      (p) => cell(fmt(p.quantity, 8)),
      (p) => cell(fmt(p.avg_price)),
      (p) => cell(fmt(p.last_close)),
      (p) => signed(p.unrealized_pnl),
      (p) => cell(p.last_decision ? fmtTime(p.last_decision.time) + " " + p.last_decision.action + " " + (p.last_decision.reason || "") : "none yet"),
    ], "no sleeves yet");
    fillTable("orders", o.open_orders, [
      (r) => cell(r.client_order_id), (r) => cell(r.mode), (r) => cell(r.sleeve), (r) => cell(r.side, r.side === "BUY" ? "buy" : "sell"),
      (r) => cell(r.type), (r) => cell(fmt(r.quantity, 8)), (r) => cell(fmt(r.price)), (r) => cell(r.status), (r) => cell(String(r.attempts)),
      (r) => cell(fmtTime(r.created_at)),
    ], "no open orders");

    const select = $("series");
    const keys = o.series.map((s) => s.symbol + ":" + s.interval);
    if (select.options.length !== keys.length || keys.some((k, i) => select.options[i].value !== k)) {
      select.replaceChildren(...keys.map((k) => new Option(k.replace(":", " "), k)));
    }
    if (!selected || !keys.includes(selected)) {
      const traded = o.positions.map((p) => p.symbol + ":" + p.interval).find((k) => keys.includes(k));
      selected = traded || keys[0] || null;
    }
    if (selected) select.value = selected;
    $("updated").textContent = "updated " + fmtTime(o.now).slice(11);
  }

  function snapToBar(times, t) {  // the open time of the bar that contains t (times ascending)
    let lo = 0, hi = times.length - 1;
    if (!times.length || t < times[0]) return null;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; }
    return times[lo];
  }

  function renderCandles(c) {
    candleSeries.setData(c.candles.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })));
    const times = c.candles.map((k) => k.time);
    const marks = [];
    for (const t of c.trades) {
      const bar = snapToBar(times, t.time);
      if (bar === null) continue;
      const buy = t.side === "BUY";
      marks.push({ time: bar, position: buy ? "belowBar" : "aboveBar", color: buy ? "#16a34a" : "#dc2626",
                   shape: buy ? "arrowUp" : "arrowDown", text: (buy ? "B " : "S ") + fmt(t.price) });
    }
    marks.sort((a, b) => a.time - b.time);
    markers.setMarkers(marks);
    if (fittedFor !== selected) { priceChart.timeScale().fitContent(); fittedFor = selected; }
    $("candle-count").textContent = String(c.candles.length);
    $("trade-count").textContent = String(marks.length);
    document.body.dataset.candles = String(c.candles.length);
    document.body.dataset.trades = String(marks.length);
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
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
