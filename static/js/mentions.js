// @-mention autocomplete on the conversation composer's textarea ([data-mention-url]).
//
// Typing "@" and a few letters lists the teammates who may open this conversation (the server
// decides, GET data-mention-url?q=); arrows and Enter or Tab (or a click) insert "@Full Name".
// A mention in an internal note notifies that teammate; in a public reply it notifies nobody.
(function () {
  "use strict";

  var area = document.querySelector("textarea[data-mention-url]");
  if (!area) return;
  var url = area.getAttribute("data-mention-url");
  var list = document.createElement("ul");
  list.id = "mention-list";
  list.className = "mention-list";
  list.setAttribute("role", "listbox");
  list.setAttribute("aria-label", "Teammates to mention");
  list.hidden = true;
  area.insertAdjacentElement("afterend", list);
  area.parentNode.classList.add("mention-host");
  area.setAttribute("aria-controls", "mention-list");
  area.setAttribute("aria-autocomplete", "list");

  var results = [];
  var active = 0;
  var start = -1;
  var timer = null;
  var sequence = 0;

  function token() {
    var caret = area.selectionStart;
    var before = area.value.slice(0, caret);
    var match = /(^|[\s(])@([^\s@]{0,40})$/.exec(before);
    if (!match) return null;
    return { start: caret - match[2].length - 1, query: match[2] };
  }

  function close() {
    list.hidden = true;
    list.textContent = "";
    results = [];
    start = -1;
    area.removeAttribute("aria-activedescendant");
  }

  function render() {
    list.textContent = "";
    if (!results.length) {
      close();
      return;
    }
    results.forEach(function (person, index) {
      var option = document.createElement("li");
      option.id = "mention-option-" + person.id;
      option.className = "mention-option";
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", index === active ? "true" : "false");
      var name = document.createElement("strong");
      name.textContent = person.name;
      var email = document.createElement("span");
      email.className = "muted";
      email.textContent = person.email;
      option.appendChild(name);
      option.appendChild(email);
      option.addEventListener("mousedown", function (event) {
        event.preventDefault();
        choose(index);
      });
      list.appendChild(option);
    });
    // Just under the textarea, never over what is being typed.
    list.style.top = area.offsetTop + area.offsetHeight + 2 + "px";
    list.style.left = area.offsetLeft + "px";
    list.hidden = false;
    area.setAttribute("aria-activedescendant", "mention-option-" + results[active].id);
  }

  function lookup() {
    var found = token();
    if (!found) {
      close();
      return;
    }
    var mine = ++sequence;
    fetch(url + "?q=" + encodeURIComponent(found.query), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        return response.ok ? response.json() : { results: [] };
      })
      .then(function (data) {
        if (mine !== sequence) return;
        start = found.start;
        results = data.results || [];
        active = 0;
        render();
      })
      .catch(close);
  }

  function choose(index) {
    var person = results[index];
    if (!person || start < 0) return;
    var caret = area.selectionStart;
    var text = "@" + person.handle + " ";
    area.value = area.value.slice(0, start) + text + area.value.slice(caret);
    var position = start + text.length;
    close();
    area.focus();
    area.setSelectionRange(position, position);
  }

  area.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(lookup, 120);
  });
  area.addEventListener("keydown", function (event) {
    if (list.hidden || !results.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var step = event.key === "ArrowDown" ? 1 : results.length - 1;
      active = (active + step) % results.length;
      render();
      event.preventDefault();
    } else if (event.key === "Enter" || event.key === "Tab") {
      choose(active);
      event.preventDefault();
    } else if (event.key === "Escape") {
      close();
      event.preventDefault();
    }
  });
  area.addEventListener("blur", function () {
    setTimeout(close, 150);
  });
})();
