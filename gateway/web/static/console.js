// The console's small helpers: the ID number checked as typed (GB 11643 check character), the print button, and the
// queue refreshing itself (from the event stream when the gateway offers one, else every few seconds).
(function () {
  "use strict";
  var WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var CHECK = "10X98765432";

  function citizenIdProblem(value) {
    var v = value.trim().toUpperCase();
    if (v.length === 0) { return ""; }
    if (!/^[0-9]{17}[0-9X]$/.test(v)) { return v.length < 18 ? "还差 " + (18 - v.length) + " 位" : "应为 17 位数字加 1 位校验码"; }
    var y = +v.slice(6, 10), m = +v.slice(10, 12), d = +v.slice(12, 14);
    var born = new Date(Date.UTC(y, m - 1, d));
    if (born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d || born > new Date()) {
      return "出生日期不正确";
    }
    var sum = 0;
    for (var i = 0; i < 17; i++) { sum += (+v[i]) * WEIGHTS[i]; }
    return CHECK[sum % 11] === v[17] ? "" : "校验码不正确，请核对";
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[data-check=citizen-id]"), function (input) {
    var message = document.getElementById(input.getAttribute("aria-describedby"));
    input.addEventListener("input", function () {
      var problem = citizenIdProblem(input.value);
      input.setCustomValidity(problem && input.value.trim().length >= 18 ? problem : "");
      input.setAttribute("aria-invalid", problem && input.value.trim().length >= 18 ? "true" : "false");
      if (message) { message.textContent = problem || (input.value ? "号码格式正确" : "18 位，输入时即校验。"); }
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  var queue = document.getElementById("queue");
  if (queue) {
    var rowsUrl = queue.getAttribute("data-rows");
    var refresh = function () {
      fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected || !r.ok) { return null; }
          return r.text();
        })
        .then(function (html) {
          if (!html) { return; }
          var doc = new DOMParser().parseFromString(html, "text/html");
          var rows = doc.getElementById("queue-rows");
          var current = document.getElementById("queue-rows");
          if (rows && current) { current.replaceWith(document.importNode(rows, true)); }
        })
        .catch(function () { /* offline for a moment: the next tick tries again */ });
    };
    var events = queue.getAttribute("data-events");
    var live = false;
    if (events && window.EventSource) {
      var source = new EventSource(events);
      source.onopen = function () { live = true; };
      // Each event is named by its type (application.accepted, …): listen to every type the gateway sends.
      (queue.getAttribute("data-event-types") || "").split(" ").forEach(function (type) {
        if (type) { source.addEventListener(type, refresh); }
      });
      source.onerror = function () { live = false; source.close(); };
    }
    var seconds = +queue.getAttribute("data-refresh") || 30;
    window.setInterval(function () { if (!live) { refresh(); } }, seconds * 1000);
  }
})();
