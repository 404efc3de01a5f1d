// modelgate console: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    // deferred scripts run before DOMContentLoaded: wait for it, so the Chart.js bundle has loaded too
    if (document.readyState === "complete") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // Narrow screens: a Menu button opens the navigation.
  function setupNav() {
    var toggle = document.querySelector(".nav-toggle");
    var nav = document.getElementById("main-nav");
    var account = document.querySelector(".account");
    if (!toggle || !nav) return;
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = !nav.classList.contains("open");
      nav.classList.toggle("open", open);
      if (account) account.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
    });
  }

  // Copy buttons: data-copy-target names the element whose text is copied.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }
  function setupCopy(root) {
    root.querySelectorAll("[data-copy-target]").forEach(function (btn) {
      if (btn.dataset.copyReady) return;
      btn.dataset.copyReady = "1";
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var el = document.getElementById(btn.dataset.copyTarget);
        if (!el) return;
        copyText(el.textContent.trim()).then(function () {
          var label = btn.textContent;
          btn.textContent = "Copied";
          btn.setAttribute("aria-live", "polite");
          setTimeout(function () { btn.textContent = label; }, 1600);
        });
      });
    });
  }

  // Vendor preset: changing vendor or region fills the base URL (the server also fills it when left empty).
  function setupPreset() {
    var data = document.getElementById("vendor-data");
    var vendor = document.getElementById("f-vendor");
    var region = document.getElementById("f-region");
    var url = document.getElementById("f-base_url");
    if (!data || !vendor || !region || !url) return;
    var vendors = JSON.parse(data.textContent);
    function regions() {
      var v = vendors[vendor.value];
      var keep = region.value;
      region.innerHTML = "";
      (v ? v.regions : []).forEach(function (r) {
        var opt = document.createElement("option");
        opt.value = r.id; opt.textContent = r.id + " — " + r.base_url;
        region.appendChild(opt);
      });
      if (v && v.regions.some(function (r) { return r.id === keep; })) region.value = keep;
    }
    function fill() {
      var v = vendors[vendor.value];
      if (!v) return;
      var r = v.regions.filter(function (x) { return x.id === region.value; })[0] || v.regions[0];
      url.value = r.base_url;
    }
    vendor.addEventListener("change", function () { regions(); fill(); });
    region.addEventListener("change", fill);
  }

  // Filters: selects submit their form on change (the Apply button stays for keyboard users).
  function setupAutoSubmit() {
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.requestSubmit ? sel.form.requestSubmit() : sel.form.submit(); });
    });
  }

  // Charts: <canvas data-chart="ID"> reads its spec from <script type="application/json" id="ID">.
  var palette = ["#3b5bdb", "#12b886", "#f59f00", "#e8590c", "#ae3ec9", "#1098ad", "#868e96", "#d6336c"];
  function setupCharts() {
    if (!window.Chart) return;
    window.Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    window.Chart.defaults.color = "#5f6b7a";
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var spec = document.getElementById(canvas.dataset.chart);
      if (!spec) return;
      var s = JSON.parse(spec.textContent);
      var datasets = s.datasets.map(function (d, i) {
        var color = d.color || palette[i % palette.length];
        var points = d.data.filter(function (v) { return v !== null; }).length;
        return {
          label: d.label, data: d.data, borderColor: color, backgroundColor: s.type === "bar" ? color : color + "22",
          fill: s.type !== "bar" && !!d.fill, tension: 0.25, pointRadius: s.labels.length > 60 && points > 30 ? 0 : 3, borderWidth: 2, spanGaps: true,
          stack: s.stacked ? "s" : undefined, maxBarThickness: 48,
        };
      });
      var yTicks = {};
      if (s.percent) yTicks.callback = function (v) { return (v * 100).toFixed(0) + " %"; };
      new window.Chart(canvas, {
        type: s.type || "line",
        data: { labels: s.labels, datasets: datasets },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
          scales: {
            x: { stacked: !!s.stacked, ticks: { maxTicksLimit: 6, autoSkip: true, maxRotation: 0 }, grid: { display: false } },
            y: { stacked: !!s.stacked, beginAtZero: true, suggestedMax: s.percent ? 1 : undefined, ticks: yTicks },
          },
        },
      });
    });
  }

  // Monitoring: the From/To fields matter only for a custom range.
  function setupRange() {
    var range = document.getElementById("f-range");
    var start = document.getElementById("f-start");
    if (!range || !start || range.querySelector("option[value=custom]") === null) return;
    var fields = [start.closest(".field"), document.getElementById("f-end").closest(".field")];
    function sync() { fields.forEach(function (f) { f.hidden = range.value !== "custom"; }); }
    range.addEventListener("change", sync);
    sync();
  }

  ready(function () {
    setupRange();
    setupNav(); setupCopy(document); setupPreset(); setupAutoSubmit(); setupCharts();
    document.body.addEventListener("htmx:afterSwap", function (e) { setupCopy(e.target); });
  });
})();
