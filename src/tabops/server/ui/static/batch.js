// The job page: its status and progress updated every second from the job's JSON, and the
// page reloaded once the job has finished (to show its downloads). Without JavaScript the
// page refreshes itself instead.
(function () {
  "use strict";
  var PERIOD_MS = 1000;

  function start() {
    var root = document.getElementById("job");
    if (!root || !window.fetch || root.getAttribute("data-finished") === "true") {
      return;
    }
    var url = root.getAttribute("data-status-url");
    var status = document.getElementById("job-status");
    var bar = document.getElementById("job-progress");
    var percent = document.getElementById("job-percent");

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (job) {
          if (status && status.textContent !== job.status) {
            status.textContent = job.status;
          }
          if (bar) {
            bar.value = job.progress;
            bar.textContent = job.percent;
          }
          if (percent) {
            percent.textContent = job.percent;
          }
          if (job.is_finished) {
            window.location.reload();
          } else {
            window.setTimeout(poll, PERIOD_MS);
          }
        })
        .catch(function () {
          window.setTimeout(poll, PERIOD_MS * 5);
        });
    }
    window.setTimeout(poll, PERIOD_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
