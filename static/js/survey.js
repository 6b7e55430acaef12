// The survey page: records that a person's browser showed it (mail scanners that merely fetch
// the link run no script, so a plain GET still records nothing), and shows "I need nothing more"
// only with the answer "Partly".
(function () {
  "use strict";
  var form = document.querySelector(".survey-form");
  if (!form) {
    return;
  }
  var token = form.querySelector("input[name=csrfmiddlewaretoken]");
  var url = form.getAttribute("data-opened-url");
  if (url && token && window.fetch) {
    fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": token.value },
      credentials: "same-origin",
    }).catch(function () {});
  }
  var nothingMore = document.getElementById("nothing-more");
  function sync() {
    var chosen = form.querySelector("input[name=resolved]:checked");
    var partly = chosen && chosen.value === "partly";
    if (nothingMore) {
      nothingMore.classList.toggle("is-hidden", !partly);
      if (!partly) {
        nothingMore.querySelector("input").checked = false;
      }
    }
  }
  form.addEventListener("change", sync);
  sync();
})();
