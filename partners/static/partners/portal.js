// The staff portal's behaviour, as one own-origin file (the CSP allows no inline script).
// - A secret shown once (#token-secret) is selected when clicked or focused, to copy it.
// - A list filter rendered as a select (.filter-select) goes to the chosen option's URL.
(function () {
  "use strict";
  function selectAll(event) {
    event.target.select();
  }
  function ready() {
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
