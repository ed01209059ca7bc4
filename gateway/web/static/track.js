// The receipt's QR code opens /track#n=<number>&c=<code>. The fragment never reaches the server: copy it into the
// form, drop it from the address bar (and history), and submit the form as a POST.
(function () {
  "use strict";
  var form = document.getElementById("track-form");
  if (!form || !window.location.hash) { return; }
  var params = new URLSearchParams(window.location.hash.slice(1));
  var number = params.get("n"), code = params.get("c");
  if (window.history && window.history.replaceState) {
    window.history.replaceState(null, "", window.location.pathname);
  }
  if (!number || !code) { return; }
  form.elements.tracking_number.value = number.slice(0, 21);
  form.elements.code.value = code.slice(0, 12);
  form.submit();
})();
