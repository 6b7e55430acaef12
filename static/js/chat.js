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
