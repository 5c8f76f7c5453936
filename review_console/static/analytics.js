/* Failure analytics: fetch the JSON once, draw each chart with the vendored Chart.js. */
(function () {
  "use strict";
  var status = document.getElementById("chart-status");
  var palette = ["#0b5cad", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#1098ad",
                 "#c2255c", "#5c940d", "#364fc7", "#862e9c", "#a61e4d", "#087f5b",
                 "#e67700", "#495057", "#74b816", "#f03e3e"];
  function color(i) { return palette[i % palette.length]; }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;   // drawn at once: screenshots and tests see the final picture
  Chart.defaults.maintainAspectRatio = false;

  function stacked(id, labels, f, key) {
    var datasets = f.codes.map(function (c, i) {
      return { label: c.label, data: f[key][c.code], backgroundColor: color(i), stack: "s" };
    });
    return new Chart(document.getElementById(id), {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }

  function draw(data) {
    var f = data.failures;
    stacked("chart-by-day", f.days.map(function (d) { return d.slice(5); }), f, "by_day");
    stacked("chart-by-region", f.regions, f, "by_region");
    new Chart(document.getElementById("chart-share"), {
      type: "doughnut",
      data: { labels: f.codes.map(function (c) { return c.label; }),
              datasets: [{ data: f.codes.map(function (c) { return f.share[c.code]; }),
                           backgroundColor: f.codes.map(function (_, i) { return color(i); }) }] },
      options: { plugins: { legend: { position: "right" } } }
    });
    var t = data.decision_times;
    new Chart(document.getElementById("chart-decision"), {
      type: "bar",
      data: { labels: t.buckets, datasets: [
        { label: "系统即时决定", data: t.auto, backgroundColor: color(2) },
        { label: "人工审核", data: t.review, backgroundColor: color(1) }] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    var median = t.median_hours.review;
    document.getElementById("decision-summary").textContent =
      median === null ? "" : "(人工审核中位数 " + median + " 小时,90% 在 " + t.p90_hours.review + " 小时内)";
    var p = data.push;
    new Chart(document.getElementById("chart-push-state"), {
      type: "bar",
      data: { labels: p.states.map(function (s) { return s.label; }),
              datasets: [{ label: "通知数", data: p.states.map(function (s) { return s.count; }),
                           backgroundColor: p.states.map(function (_, i) { return color(i + 3); }) }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    new Chart(document.getElementById("chart-push-errcode"), {
      type: "bar",
      data: { labels: p.errcodes.map(function (e) { return e.label; }),
              datasets: [{ label: "失败数", data: p.errcodes.map(function (e) { return e.count; }),
                           backgroundColor: color(1) }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    status.textContent = "统计时间 " + data.generated_at + ",近 " + data.days + " 天共 " + f.total + " 次绑定失败。";
    document.body.setAttribute("data-charts", "ready");
  }

  fetch(status.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
    .then(draw)
    .catch(function (e) { status.textContent = "图表加载失败(" + e.message + "),请刷新页面重试。"; });
})();
