/* The managers' dashboard charts. Data comes from the json_script island #dashboard-data
   (not executable, so the Content Security Policy allows it); Chart.js is vendored. */
(function () {
  "use strict";

  var island = document.getElementById("dashboard-data");
  if (!island || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(island.textContent);
  var SMALL_N = 10;
  var BLUE = "#2f5bd3";
  var PURPLE = "#7c3aed";
  var GREY = "#9aa3b2";
  var GREEN = "#16a34a";
  var AMBER = "#d97706";

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#5b6475";
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;

  function pct(v) {
    return v === null || v === undefined ? null : Math.round(v * 1000) / 10;
  }

  function weekLabel(iso) {
    var d = new Date(iso + "T00:00:00");
    return d.toLocaleDateString(undefined, { day: "numeric", month: "short" });
  }

  var weeks = data.trend.weeks.map(weekLabel);
  var percentAxis = {
    min: 0,
    max: 100,
    ticks: {
      callback: function (v) {
        return v + "%";
      }
    }
  };

  function rateTooltip(ns) {
    return {
      callbacks: {
        label: function (ctx) {
          var n = ns ? ns[ctx.dataIndex] : null;
          var value = ctx.parsed.y === null ? "no data" : ctx.parsed.y + "%";
          return ctx.dataset.label + ": " + value + (n !== null && n !== undefined ? " (n=" + n + (n < SMALL_N ? ", small sample" : "") + ")" : "");
        }
      }
    };
  }

  // Points resting on fewer than 10 answers are drawn hollow and grey.
  function pointColours(ns, colour) {
    return ns.map(function (n) {
      return n < SMALL_N ? GREY : colour;
    });
  }

  // 1. 12-week trend of the chosen metric, with its target as a dashed line.
  var trendCanvas = document.getElementById("chart-trend");
  var picker = document.getElementById("trend-metric");
  var trendChart = null;

  function drawTrend(key) {
    var ns = data.trend.n[key];
    var datasets = [
      {
        label: data.labels[key],
        data: data.trend.series[key].map(pct),
        borderColor: BLUE,
        backgroundColor: BLUE,
        pointBackgroundColor: pointColours(ns, BLUE),
        pointBorderColor: pointColours(ns, BLUE),
        pointRadius: 4,
        spanGaps: true,
        tension: 0.2
      }
    ];
    if (data.targets[key] !== undefined) {
      datasets.push({
        label: "Target",
        data: weeks.map(function () {
          return pct(data.targets[key]);
        }),
        borderColor: GREEN,
        borderDash: [6, 4],
        pointRadius: 0,
        fill: false
      });
    }
    if (trendChart) {
      trendChart.destroy();
    }
    trendChart = new Chart(trendCanvas, {
      type: "line",
      data: { labels: weeks, datasets: datasets },
      options: { scales: { y: percentAxis }, plugins: { tooltip: rateTooltip(ns) } }
    });
  }

  if (trendCanvas && picker) {
    drawTrend(picker.value);
    picker.addEventListener("change", function () {
      drawTrend(picker.value);
    });
  }

  // 2. The resolution gap: internal FCR against customer FCR, week by week.
  var gapCanvas = document.getElementById("chart-gap");
  if (gapCanvas) {
    new Chart(gapCanvas, {
      type: "line",
      data: {
        labels: weeks,
        datasets: [
          {
            label: "Internal FCR (our count)",
            data: data.trend.gap.internal_fcr.map(pct),
            borderColor: GREY,
            backgroundColor: GREY,
            borderDash: [4, 3],
            spanGaps: true
          },
          {
            label: "Customer FCR (their word)",
            data: data.trend.gap.customer_fcr.map(pct),
            borderColor: PURPLE,
            backgroundColor: PURPLE,
            pointBackgroundColor: pointColours(data.trend.gap.n, PURPLE),
            spanGaps: true
          }
        ]
      },
      options: { scales: { y: percentAxis }, plugins: { tooltip: rateTooltip(data.trend.gap.n) } }
    });
  }

  // 3. CSAT by interactions-per-conversation bucket; a click opens that bucket's conversations.
  var interCanvas = document.getElementById("chart-interactions");
  if (interCanvas) {
    var buckets = data.interactions.buckets;
    var csatNs = buckets.map(function (b) {
      return b.csat.n;
    });
    new Chart(interCanvas, {
      type: "bar",
      data: {
        labels: buckets.map(function (b) {
          return b.bucket + (b.bucket === "1" ? " message" : " messages");
        }),
        datasets: [
          {
            label: "CSAT",
            data: buckets.map(function (b) {
              return pct(b.csat.value);
            }),
            backgroundColor: pointColours(csatNs, PURPLE)
          },
          {
            label: "Share of solves",
            data: buckets.map(function (b) {
              return pct(b.share);
            }),
            backgroundColor: "#c7d2fe"
          }
        ]
      },
      options: {
        scales: { y: percentAxis },
        plugins: { tooltip: rateTooltip(csatNs) },
        onClick: function (_event, elements) {
          if (elements.length) {
            var bucket = buckets[elements[0].index].bucket;
            window.location.href = data.drill + "&period=custom&metric=interactions_per_conversation&bucket=" + encodeURIComponent(bucket);
          }
        }
      }
    });
  }

  // 4. Response coverage: how many solves the customer figures actually speak for.
  var coverageCanvas = document.getElementById("chart-coverage");
  if (coverageCanvas) {
    var c = data.coverage;
    new Chart(coverageCanvas, {
      type: "doughnut",
      data: {
        labels: ["Answered the survey", "Surveyed, no answer", "Not surveyed"],
        datasets: [
          {
            data: [c.answered, c.unanswered, c.not_surveyed],
            backgroundColor: [PURPLE, AMBER, "#d6dbe3"]
          }
        ]
      },
      options: { plugins: { legend: { position: "right" } } }
    });
  }
})();
