// The predict page's "Random example": refill the form in place from a random example
// record. Without JavaScript (or when the request fails) the link reloads the page with
// one chosen by the server instead.
(function () {
  "use strict";

  function shown(value) {
    if (value === null || value === undefined) {
      return "";
    }
    if (value === true) {
      return "1";
    }
    if (value === false) {
      return "0";
    }
    return String(value);
  }

  function choose(select, value) {
    for (var i = 0; i < select.options.length; i += 1) {
      if (select.options[i].value === value) {
        select.value = value;
        return;
      }
    }
    var option = document.createElement("option");
    option.value = value;
    option.textContent = value === "" ? "(missing)" : value;
    select.appendChild(option);
    select.value = value;
  }

  function fill(record) {
    var controls = document.querySelectorAll("[data-feature]");
    for (var i = 0; i < controls.length; i += 1) {
      var control = controls[i];
      var name = control.getAttribute("data-feature");
      if (!Object.prototype.hasOwnProperty.call(record, name)) {
        continue;
      }
      var value = shown(record[name]);
      if (control.tagName === "SELECT") {
        choose(control, value);
      } else {
        control.value = value;
      }
    }
  }

  function start() {
    var link = document.getElementById("random-example");
    var status = document.getElementById("example-status");
    if (!link || !window.fetch) {
      return;
    }
    link.addEventListener("click", function (event) {
      var url = link.getAttribute("data-example-url");
      if (!url) {
        return;
      }
      event.preventDefault();
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (document_) {
          fill(document_.record || {});
          if (status) {
            status.textContent = "Filled with a random example.";
          }
        })
        .catch(function () {
          window.location.assign(link.href);
        });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
