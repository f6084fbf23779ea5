// The claim code travels in the URL fragment, which the browser never sends to a server.
// Post it from this page (so it reaches no access log), after dropping it from the address
// bar and the history. Without this script, the member pastes the code into the form.
(function () {
  "use strict";
  var code = window.location.hash.replace(/^#/, "");
  if (!code) {
    return;
  }
  window.history.replaceState(null, "", window.location.pathname);
  var form = document.getElementById("claim-form");
  if (!form) {
    return;
  }
  form.querySelector("input[name=code]").value = code;
  form.submit();
})();
