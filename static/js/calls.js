// The call log form (customer and conversation pages): "Start talk timer" counts the talk time
// into the form while the agent is on the phone; pressing it again stops it.
(function () {
  "use strict";

  document.querySelectorAll("form[data-call-form]").forEach(function (form) {
    var button = form.querySelector("[data-call-timer]");
    var readout = form.querySelector("[data-call-timer-readout]");
    var talk = form.querySelector("input[name=talk_seconds]");
    var started = form.querySelector("input[name=started_at]");
    if (!button || !talk) return;
    var timer = null;
    var since = 0;
    var base = 0;

    function show(seconds) {
      var minutes = Math.floor(seconds / 60);
      var rest = seconds % 60;
      if (readout) readout.textContent = minutes + " min " + (rest < 10 ? "0" : "") + rest + " s";
    }

    button.addEventListener("click", function () {
      if (timer) {
        clearInterval(timer);
        timer = null;
        button.textContent = "Resume talk timer";
        return;
      }
      if (started && !base) {
        var now = new Date();
        now.setSeconds(0, 0);
        var local = new Date(now.getTime() - now.getTimezoneOffset() * 60000);
        started.value = local.toISOString().slice(0, 16);
      }
      base = parseInt(talk.value, 10) || 0;
      since = Date.now();
      button.textContent = "Stop talk timer";
      timer = setInterval(function () {
        var seconds = base + Math.floor((Date.now() - since) / 1000);
        talk.value = seconds;
        show(seconds);
      }, 1000);
    });
  });
})();
