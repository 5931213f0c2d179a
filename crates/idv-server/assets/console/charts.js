// IdentityVault console charts: the communication graph and the access
// heat map, drawn with ECharts from the page's JSON endpoint. No inline
// script (the Content-Security-Policy allows none).
(function () {
  "use strict";
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  var STATUS = { active: "--ok", suspended: "--warn", retired: "--muted", provisioning: "--accent" };

  function graph(el) {
    fetch(el.getAttribute("data-source"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var names = {};
        d.nodes.forEach(function (n) { names[n.id] = n.name; });
        var max = 1;
        d.edges.forEach(function (e) { max = Math.max(max, e.allowed + e.denied); });
        var chart = echarts.init(el, null, { renderer: "canvas" });
        chart.setOption({
          animation: d.nodes.length < 500,
          tooltip: {},
          series: [{
            type: "graph",
            layout: "force",
            roam: true,
            zoom: d.nodes.length < 30 ? 3 : d.nodes.length < 300 ? 1.5 : 1,
            draggable: d.nodes.length < 1000,
            force: { repulsion: d.nodes.length > 1000 ? 30 : 120, edgeLength: 60, gravity: 0.1 },
            label: { show: d.nodes.length <= 200, position: "right", color: css("--fg") },
            edgeSymbol: ["none", "arrow"],
            data: d.nodes.map(function (n) {
              return {
                id: n.id, name: n.name, value: n.owner, symbolSize: 12,
                itemStyle: { color: css(STATUS[n.status] || "--accent") },
                tooltip: { formatter: n.name + " (" + n.status + ", " + (n.environment || "no environment") + ", " + n.owner + ")" }
              };
            }),
            links: d.edges.map(function (e) {
              return {
                source: e.source, target: e.target,
                lineStyle: { width: 1 + 5 * (e.allowed + e.denied) / max, color: e.denied > 0 ? css("--bad") : css("--muted"), opacity: 0.8 },
                tooltip: { formatter: names[e.source] + " → " + names[e.target] + ": " + e.allowed + " allowed, " + e.denied + " denied" }
              };
            })
          }]
        });
        chart.on("click", function (p) {
          if (p.dataType === "node") { window.location.href = "/console/agents/" + p.data.id; }
        });
        window.addEventListener("resize", function () { chart.resize(); });
        var s = document.getElementById("graph-summary");
        if (s) {
          s.textContent = d.nodes.length + " agents, " + d.edges.length + " caller → callee pairs" +
            (d.truncated ? " (the busiest shown)" : "") + ".";
        }
        var body = document.querySelector("#graph-table tbody");
        if (body) {
          d.edges.slice(0, 1000).forEach(function (e) {
            var tr = document.createElement("tr");
            [names[e.source], names[e.target], e.allowed, e.denied].forEach(function (v) {
              var td = document.createElement("td");
              td.textContent = String(v);
              tr.appendChild(td);
            });
            body.appendChild(tr);
          });
        }
        el.setAttribute("data-rendered", String(d.nodes.length));
      });
  }

  function heatmap(el) {
    fetch(el.getAttribute("data-source"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var max = 1;
        d.cells.forEach(function (c) { max = Math.max(max, c.count); });
        var chart = echarts.init(el, null, { renderer: "canvas" });
        chart.setOption({
          animation: false,
          tooltip: { position: "top" },
          grid: { left: 180, right: 24, top: 24, bottom: 120 },
          xAxis: { type: "category", data: d.actions, axisLabel: { rotate: 40, color: css("--fg") } },
          yAxis: { type: "category", data: d.agents.map(function (a) { return a[1]; }), axisLabel: { color: css("--fg") } },
          visualMap: { min: 0, max: max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                       inRange: { color: [css("--card"), css("--accent")] }, textStyle: { color: css("--fg") } },
          series: [{
            type: "heatmap",
            data: d.cells.map(function (c) { return [c.action, c.agent, c.count]; }),
            label: { show: d.agents.length * d.actions.length <= 400, color: "#000", textBorderColor: "#fff", textBorderWidth: 2 }
          }]
        });
        chart.on("click", function (p) {
          var agent = d.agents[p.data[1]];
          if (agent) { window.location.href = "/console/audit?action=authz.decision&target=" + encodeURIComponent(agent[0]); }
        });
        window.addEventListener("resize", function () { chart.resize(); });
        el.setAttribute("data-rendered", String(d.cells.length));
        var w = document.getElementById("heatweek");
        if (w) { week(w, d); }
      });
  }

  // Decisions by day of the week and hour (UTC); a click opens the audit
  // log on the most recent such hour's decisions.
  function week(el, d) {
    var max = 1;
    d.week.forEach(function (c) { max = Math.max(max, c.allowed + c.denied); });
    var hours = [];
    for (var h = 0; h < 24; h++) { hours.push(String(h)); }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      tooltip: {
        position: "top",
        formatter: function (p) {
          var c = d.week[p.data[1] * 24 + p.data[0]];
          return d.days[c.day] + " " + c.hour + ":00 UTC: " + c.allowed + " allowed, " + c.denied + " denied";
        }
      },
      grid: { left: 60, right: 24, top: 24, bottom: 90 },
      xAxis: { type: "category", data: hours, name: "hour (UTC)", axisLabel: { color: css("--fg") } },
      yAxis: { type: "category", data: d.days, inverse: true, axisLabel: { color: css("--fg") } },
      visualMap: { min: 0, max: max, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                   inRange: { color: [css("--card"), css("--accent")] }, textStyle: { color: css("--fg") } },
      series: [{
        type: "heatmap",
        data: d.week.map(function (c) { return [c.hour, c.day, c.allowed + c.denied]; }),
        label: { show: false }
      }]
    });
    chart.on("click", function (p) {
      var c = d.week[p.data[1] * 24 + p.data[0]];
      if (c && c.last) {
        var until = new Date(Date.parse(c.last) + 3600 * 1000 - 1).toISOString();
        window.location.href = "/console/audit?action=authz.decision&since=" + encodeURIComponent(c.last) +
          "&until=" + encodeURIComponent(until);
      }
    });
    window.addEventListener("resize", function () { chart.resize(); });
    el.setAttribute("data-rendered", String(d.week.length));
  }

  function bars(el) {
    var labels = el.getAttribute("data-labels").split("|");
    var values = el.getAttribute("data-values").split("|").map(Number);
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      tooltip: {},
      grid: { left: 80, right: 24, top: 24, bottom: 60 },
      xAxis: { type: "category", data: labels, axisLabel: { color: css("--fg"), interval: 0 } },
      yAxis: { type: "value", axisLabel: { color: css("--fg") } },
      series: [{
        type: "bar",
        data: values.map(function (v, i) {
          return { value: Math.round(v), itemStyle: { color: i === values.length - 1 ? css("--bad") : css("--ok") } };
        })
      }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
    el.setAttribute("data-rendered", String(values.length));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var r = document.getElementById("roi-chart");
    if (r) { bars(r); }
    var g = document.getElementById("graph");
    if (g) { graph(g); }
    var h = document.getElementById("heatmap");
    if (h) { heatmap(h); }
  });
})();
