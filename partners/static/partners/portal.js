// The staff portal's behaviour, as one own-origin file (the CSP allows no inline script).
// - A secret shown once (#token-secret) is selected when clicked or focused, to copy it.
// - A list filter rendered as a select (.filter-select) goes to the chosen option's URL.
// - A size input shows what it holds in binary units beside it (output[data-byte-size]),
//   read as the server reads it (partners.admin.grants.parse_size).
(function () {
  "use strict";
  function selectAll(event) {
    event.target.select();
  }
  var UNITS = ["b", "kib", "mib", "gib", "tib", "pib"];
  var LABELS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function parseSize(text) {
    var match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(text);
    if (!match) {
      return null;
    }
    var power = UNITS.indexOf((match[2] || "b").toLowerCase());
    return power < 0 ? null : parseFloat(match[1]) * Math.pow(1024, power);
  }
  function formatSize(n) {
    if (n < 1024) {
      return Math.floor(n) + " B";
    }
    var unit = 0;
    while (n >= 1024 && unit < LABELS.length - 1) {
      n /= 1024;
      unit += 1;
    }
    return n.toFixed(1) + " " + LABELS[unit];
  }
  function ready() {
    var outputs = document.querySelectorAll("output[data-byte-size]");
    Array.prototype.forEach.call(outputs, function (output) {
      var input = document.getElementById(output.htmlFor.value);
      if (!input) {
        return;
      }
      input.addEventListener("input", function () {
        var bytes = parseSize(input.value);
        output.textContent = bytes ? formatSize(bytes) : input.value ? "not a size" : "";
      });
    });
    var secret = document.getElementById("token-secret");
    if (secret) {
      secret.addEventListener("click", selectAll);
      secret.addEventListener("focus", selectAll);
    }
    var selects = document.querySelectorAll("select.filter-select");
    Array.prototype.forEach.call(selects, function (select) {
      select.addEventListener("change", function () {
        if (select.value) {
          window.location.href = select.value;
        }
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
