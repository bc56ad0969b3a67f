/* The usage dashboard: requests, tokens and cost over time per key, user or model, the error rate,
 * latency percentiles and budget consumption, drawn with Chart.js (chart.umd.min.js, vendored beside this
 * file: nothing is fetched from elsewhere) from the gateway's chart data:
 *
 *   <div id="usage-charts" data-url="/ai/api/logs/charts"></div>
 *   <script src=".../chart.umd.min.js"></script><script src=".../usage-charts.js"></script>
 *
 * The container gets data-state="ready" (or "error") once drawn.
 */
"use strict";
(function () {
  const COLORS = ["#2f6fde", "#e8833a", "#3aa876", "#c0392b", "#8e44ad", "#16a5b8", "#d4ac0d", "#7f8c8d", "#555"];
  const CHARTS = [
    ["requests", "Requests"], ["tokens", "Tokens"], ["cost", "Cost (USD)"],
    ["error_rate", "Error rate"], ["latency", "Latency (ms)"], ["budgets", "Budget used (%)"],
  ];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    (children || []).forEach((c) => node.append(c));
    return node;
  }

  function select(name, options, value) {
    const s = el("select", {name: name, "aria-label": name});
    options.forEach(([v, label]) => s.append(new Option(label, v, false, v === value)));
    return s;
  }

  function labels(data) {
    const day = data.bucket_seconds >= 86400;
    return data.buckets.map((t) => {
      const d = new Date(t * 1000);
      return day ? d.toLocaleDateString() : d.toLocaleString([], {month: "short", day: "numeric", hour: "2-digit"});
    });
  }

  function stacked(series, x) {
    return {
      type: "bar",
      data: {labels: x, datasets: Object.entries(series).map(([name, values], i) => ({
        label: name, data: values, backgroundColor: COLORS[i % COLORS.length], stack: "s",
      }))},
      options: {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}},
    };
  }

  function line(sets, x, yOptions) {
    return {
      type: "line",
      data: {labels: x, datasets: sets.map(([name, values], i) => ({
        label: name, data: values, borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
        spanGaps: false, tension: 0.2,
      }))},
      options: {scales: {y: Object.assign({beginAtZero: true}, yOptions || {})}},
    };
  }

  function budgets(rows) {
    return {
      type: "bar",
      data: {
        labels: rows.map((b) => b.key + " · " + b.reset_duration),
        datasets: [{label: "% of budget used", data: rows.map((b) => b.max ? 100 * b.used / b.max : 0),
                    backgroundColor: rows.map((b) => (b.used >= b.max ? "#c0392b" : "#2f6fde"))}],
      },
      options: {indexAxis: "y", scales: {x: {beginAtZero: true, suggestedMax: 100}}},
    };
  }

  function configs(data) {
    const x = labels(data);
    const p = data.latency_ms;
    return {
      requests: stacked(data.requests, x),
      tokens: stacked(data.tokens, x),
      cost: stacked(data.cost, x),
      error_rate: line([["error rate", data.error_rate.map((r) => 100 * r)]], x, {suggestedMax: 5, title: {display: true, text: "%"}}),
      latency: line([["p50", p.p50], ["p95", p.p95], ["p99", p.p99]], x),
      budgets: budgets(data.budgets),
    };
  }

  function summary(data) {
    const t = data.totals;
    return `${t.requests} requests · ${t.errors} errors · ${t.tokens} tokens · $${t.cost.toFixed(6)}`;
  }

  function mount(root) {
    const url = root.dataset.url;
    const range = select("range", [["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]], "7d");
    const group = select("group_by", [["model", "per model"], ["key", "per key"], ["user", "per user"], ["provider", "per provider"]],
                         root.dataset.group || "model");
    const totals = el("p", {"class": "usage-totals"});
    const grid = el("div", {"class": "usage-grid", style: "display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:1rem"});
    const canvases = {};
    CHARTS.forEach(([name, title]) => {
      canvases[name] = el("canvas", {"data-chart": name});
      const box = el("div", {style: "position:relative;height:220px"}, [canvases[name]]);
      grid.append(el("figure", {style: "margin:0"}, [el("figcaption", {}, [title]), box]));
    });
    root.append(el("p", {}, [range, " ", group]), totals, grid);
    const charts = {};

    async function draw() {
      root.dataset.state = "loading";
      try {
        const response = await fetch(`${url}?range=${range.value}&group_by=${group.value}`, {credentials: "same-origin"});
        const data = await response.json();
        if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
        Object.entries(configs(data)).forEach(([name, config]) => {
          if (charts[name]) charts[name].destroy();
          config.options = Object.assign({animation: false, responsive: true, maintainAspectRatio: false}, config.options);
          charts[name] = new Chart(canvases[name], config);
        });
        totals.textContent = summary(data);
        root.dataset.state = "ready";
      } catch (error) {
        totals.textContent = "Could not load usage: " + error.message;
        root.dataset.state = "error";
      }
    }

    range.addEventListener("change", draw);
    group.addEventListener("change", draw);
    draw();
  }

  document.querySelectorAll("[data-usage-charts]").forEach(mount);
})();
