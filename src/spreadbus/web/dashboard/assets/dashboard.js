/* spreadbus dashboard: clientside rendering of the overview table (see pages/overview.py).
 *
 * The server sends rows as arrays in ROW_FIELDS order, numbers already rounded for display;
 * this file turns them into the table, sorts it, and draws each pair's z-score sparkline as a
 * small SVG. Sparkline history lives here, capped at SPARK_POINTS per pair.
 */
(function () {
  "use strict";

  var F = {
    pair: 0, zscore: 1, beta: 2, kalman_beta: 3, half_life: 4, adf_pvalue: 5, corr: 6,
    spread_vol: 7, basis_bps: 8, last_alert: 9, age_s: 10, bars: 11, window: 12,
    bar_ms: 13, zscore_bar: 14,
  };
  var SPARK_POINTS = 300;
  var COLUMNS = [
    { key: "pair", label: "Pair", title: "Y/X: Y regressed on X" },
    { key: "spark", label: "z, 5 min", sortable: false, title: "z-score of the 1 s bars" },
    { key: "zscore", label: "z", digits: 2, title: "live spread over its window's deviation" },
    { key: "beta", label: "β OLS", digits: 4, title: "rolling OLS hedge ratio" },
    { key: "kalman_beta", label: "β Kalman", digits: 4, title: "Kalman-filter hedge ratio" },
    { key: "half_life", label: "Half-life", digits: 1, unit: " s",
      title: "mean-reversion half-life of the spread" },
    { key: "adf_pvalue", label: "ADF p", digits: 4,
      title: "ADF test on the spread: p < 0.05 reads as stationary" },
    { key: "corr", label: "Corr", digits: 3, title: "correlation of 1 s returns" },
    { key: "spread_vol", label: "Spread vol", digits: 4,
      title: "annualised volatility of the spread's returns on gross notional" },
    { key: "basis_bps", label: "Ghost basis", digits: 2, unit: " bps",
      title: "second venue over Binance, Y leg" },
    { key: "last_alert", label: "Last alert", title: "newest alert for the pair" },
    { key: "age_s", label: "Age", title: "time since the pair's newest trade" },
  ];
  var spark = {};
  var titles = {};  // column tooltips: the glossary's definitions, sent with the first rows

  function h(type, props, children) {
    var p = props || {};
    if (children !== undefined) { p.children = children; }
    return { type: type, namespace: "dash_html_components", props: p };
  }

  function num(v, digits) {
    return v === null || v === undefined ? "—" : Number(v).toFixed(digits);
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) { return "—"; }
    if (seconds < 10) { return seconds.toFixed(1) + " s"; }
    if (seconds < 120) { return Math.round(seconds) + " s"; }
    if (seconds < 7200) { return Math.round(seconds / 60) + " m"; }
    return Math.round(seconds / 3600) + " h";
  }

  function remember(data) {
    if (data.titles) { titles = data.titles; }
    if (data.spark) {
      spark = {};
      Object.keys(data.spark).forEach(function (pair) {
        spark[pair] = data.spark[pair].filter(function (p) { return p[1] !== null; });
      });
    }
    data.rows.forEach(function (row) {
      var points = spark[row[F.pair]] || (spark[row[F.pair]] = []);
      var ts = row[F.bar_ms];
      var z = row[F.zscore_bar];
      if (ts && z !== null && (!points.length || ts > points[points.length - 1][0])) {
        points.push([ts, z]);
        if (points.length > SPARK_POINTS) { points.splice(0, points.length - SPARK_POINTS); }
      }
    });
  }

  function sparkline(points) {
    var w = 140, hgt = 30;
    if (!points || points.length < 2) {
      return h("Span", { className: "text-muted small" }, "no bars yet");
    }
    var t0 = points[0][0], t1 = points[points.length - 1][0];
    var top = 2.5;
    points.forEach(function (p) { top = Math.max(top, Math.abs(p[1])); });
    function x(t) { return ((t - t0) / Math.max(t1 - t0, 1)) * (w - 2) + 1; }
    function y(z) { return hgt / 2 - (z / top) * (hgt / 2 - 2); }
    var d = points.map(function (p, i) {
      return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
    }).join("");
    var last = points[points.length - 1][1];
    var color = Math.abs(last) >= 2 ? "#ec7063" : "#48c9b0";
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" width="' + w + '" height="' + hgt + '">' +
      '<line x1="0" x2="' + w + '" y1="' + y(2) + '" y2="' + y(2) + '" stroke="#666" stroke-dasharray="2 2"/>' +
      '<line x1="0" x2="' + w + '" y1="' + y(-2) + '" y2="' + y(-2) + '" stroke="#666" stroke-dasharray="2 2"/>' +
      '<line x1="0" x2="' + w + '" y1="' + y(0) + '" y2="' + y(0) + '" stroke="#444"/>' +
      '<path d="' + d + '" fill="none" stroke="' + color + '" stroke-width="1.3"/></svg>';
    return h("Img", {
      src: "data:image/svg+xml;utf8," + encodeURIComponent(svg),
      width: w, height: hgt, alt: "z-score sparkline", className: "sparkline",
    });
  }

  function cell(col, row) {
    var v = row[F[col.key]];
    if (col.key === "pair") {
      var parts = [h("Span", { className: "fw-semibold" }, v)];
      var bars = row[F.bars], win = row[F.window];
      if (bars !== null && win !== null && bars < win) {
        parts.push(h("Div", { className: "small text-warning" },
          "warming up: " + bars + " of " + win + " bars"));
      }
      return h("Td", {}, parts);
    }
    if (col.key === "spark") { return h("Td", {}, sparkline(spark[row[F.pair]])); }
    if (col.key === "zscore") {
      var mag = v === null ? 0 : Math.abs(v);
      var cls = mag >= 2 ? "z-hot" : mag >= 1 ? "z-warm" : "";
      return h("Td", { className: "num " + cls }, num(v, 2));
    }
    if (col.key === "adf_pvalue") {
      var parts2 = [num(v, 4)];
      if (v !== null && v < 0.05) {
        parts2.push(h("Span", { className: "badge text-bg-success ms-1" }, "stationary"));
      }
      return h("Td", { className: "num" }, parts2);
    }
    if (col.key === "last_alert") {
      if (!v) { return h("Td", { className: "text-muted" }, "—"); }
      var ago = age(Date.now() / 1000 - v[1] / 1000);
      return h("Td", { className: "small", title: v[0] }, [
        h("Span", { className: "alert-text" }, v[0]),
        h("Span", { className: "text-muted ms-1" }, ago + " ago"),
      ]);
    }
    if (col.key === "age_s") {
      return h("Td", { className: "num" + (v !== null && v > 5 ? " text-warning" : "") }, age(v));
    }
    return h("Td", { className: "num" }, v === null ? "—" : num(v, col.digits) + (col.unit || ""));
  }

  function sortKey(row, sort) {
    if (sort.col === "last_alert") { var a = row[F.last_alert]; return a ? a[1] : null; }
    var v = row[F[sort.col]];
    if (sort.col === "zscore" && v !== null) { return Math.abs(v); }
    return v;
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    spreadbus: {
      overviewTable: function (data, sort) {
        if (!data || !data.rows) {
          return h("Div", { className: "text-muted p-3" }, "loading pairs…");
        }
        if (!data.rows.length) {
          return h("Div", { className: "text-muted p-3" },
            "No pairs configured: add one with PUT /api/pairs or the screener.");
        }
        remember(data);
        var s = sort || { col: "zscore", desc: true };
        var rows = data.rows.slice().sort(function (a, b) {
          var ka = sortKey(a, s), kb = sortKey(b, s);
          if (ka === kb) { return a[F.pair] < b[F.pair] ? -1 : 1; }
          if (ka === null || ka === undefined) { return 1; }
          if (kb === null || kb === undefined) { return -1; }
          var c = ka < kb ? -1 : 1;
          return s.desc ? -c : c;
        });
        var head = h("Tr", {}, COLUMNS.map(function (col) {
          var arrow = s.col === col.key ? (s.desc ? " ▼" : " ▲") : "";
          var title = titles[col.key] || col.title;
          if (col.sortable === false) { return h("Th", { title: title }, col.label); }
          return h("Th", {
            id: { type: "ov-sort", col: col.key }, n_clicks: 0, title: title,
            className: "sortable",
          }, col.label + arrow);
        }));
        var body = rows.map(function (row) {
          return h("Tr", {
            id: { type: "ov-row", pair: row[F.pair] }, n_clicks: 0, className: "ov-row",
            "data-pair": row[F.pair],
          }, COLUMNS.map(function (col) { return cell(col, row); }));
        });
        return h("Table", { className: "table table-sm table-hover overview mb-0" },
          [h("Thead", {}, head), h("Tbody", {}, body)]);
      },

      pairKpis: function (values) {
        var outs = window.dash_clientside.callback_context.outputs_list;
        var none = window.dash_clientside.no_update;
        if (!values) { return [outs[0].map(function () { return none; }),
                               outs[1].map(function () { return none; })]; }
        return [
          outs[0].map(function (o) { return values[o.id.field] || "—"; }),
          outs[1].map(function (o) { return values[o.id.symbol + " " + o.id.field] || "—"; }),
        ];
      },

      overviewSort: function (clicks, sort) {
        var ctx = window.dash_clientside.callback_context;
        if (!ctx.triggered.length || !ctx.triggered[0].value) {
          return window.dash_clientside.no_update;
        }
        var col = JSON.parse(ctx.triggered[0].prop_id.split(".")[0]).col;
        var s = sort || {};
        return { col: col, desc: s.col === col ? !s.desc : true };
      },

      overviewOpen: function (clicks) {
        var ctx = window.dash_clientside.callback_context;
        if (!ctx.triggered.length || !ctx.triggered[0].value) {
          return window.dash_clientside.no_update;
        }
        var pair = JSON.parse(ctx.triggered[0].prop_id.split(".")[0]).pair;
        return "/pair/" + pair.replace("/", "-");
      },
    },
  });
})();
