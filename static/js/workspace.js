// Conversation page: saved replies insert into the composer; the presence heartbeat says
// whether this agent is writing a reply (htmx reads #replying-flag on every beat).
(function () {
  "use strict";

  var picker = document.querySelector("select[data-insert-into]");
  var body = document.getElementById("reply-body");
  var flag = document.getElementById("replying-flag");
  var lastTyped = 0;

  if (picker && body) {
    picker.addEventListener("change", function () {
      var option = picker.options[picker.selectedIndex];
      var text = option && option.getAttribute("data-text");
      if (!text) return;
      var start = body.selectionStart || 0;
      var end = body.selectionEnd || 0;
      if (!body.value.trim()) {
        body.value = text;
      } else {
        body.value = body.value.slice(0, start) + text + body.value.slice(end);
      }
      picker.selectedIndex = 0;
      body.focus();
      lastTyped = Date.now();
    });
  }

  if (body && flag) {
    body.addEventListener("input", function () {
      lastTyped = Date.now();
    });
    document.body.addEventListener("htmx:configRequest", function (event) {
      if (event.detail.path.indexOf("/presence/") === -1) return;
      var writing = body.value.trim() !== "" && Date.now() - lastTyped < 30000;
      event.detail.parameters.replying = writing ? "1" : "0";
    });
  }

  // Leaving the page: tell the server at once, so nobody sees a ghost viewer for 40 seconds.
  var state = document.getElementById("presence-state");
  var composer = document.getElementById("composer");
  if (state && composer && navigator.sendBeacon) {
    window.addEventListener("pagehide", function () {
      var data = new FormData();
      data.append("csrfmiddlewaretoken", composer.elements.csrfmiddlewaretoken.value);
      navigator.sendBeacon(state.getAttribute("data-leave-url"), data);
    });
  }
})();
