// tabops web UI: small enhancements only; every page works without this script.
(function () {
  "use strict";
  // A form with data-confirm asks before it is sent (the server asks again where it matters).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  // A button of a sent form is disabled for a moment, so a double press does not send twice.
  document.addEventListener("submit", function (event) {
    if (event.defaultPrevented) return;
    var button = event.submitter;
    if (button && button.tagName === "BUTTON") {
      window.setTimeout(function () { button.disabled = true; }, 0);
      window.setTimeout(function () { button.disabled = false; }, 3000);
    }
  });
})();
