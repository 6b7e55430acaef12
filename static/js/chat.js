// /chat/: keep the newest message in view, and send with Enter (Shift+Enter for a new line).
(function () {
  "use strict";

  function scrollDown() {
    var transcript = document.getElementById("transcript");
    if (transcript) transcript.scrollTop = transcript.scrollHeight;
  }

  scrollDown();
  document.body.addEventListener("htmx:afterSwap", scrollDown);

  var body = document.getElementById("chat-body");
  document.body.addEventListener("htmx:afterRequest", function (event) {
    // A message sent through htmx: clear the box for the next one
    if (body && event.detail.elt === body.form && event.detail.successful) {
      body.value = "";
      body.focus();
    }
  });
  document.body.addEventListener("htmx:responseError", function (event) {
    var error = document.getElementById("chat-error");
    if (!error || !body || event.detail.elt !== body.form) return;
    // The wording comes translated from the page (data-too-fast, data-failed).
    error.textContent =
      event.detail.xhr.status === 403 ? error.dataset.tooFast : error.dataset.failed;
    error.hidden = false;
  });
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var error = document.getElementById("chat-error");
    if (error && body && event.detail.elt === body.form) error.hidden = true;
  });
  if (body) {
    body.focus();
    body.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        if (body.value.trim()) body.form.requestSubmit();
      }
    });
  }
})();
