// Keyboard shortcuts for the queue and the conversation page; "?" shows them all.
// Local file, no library. Keys never fire while the agent types in a field (Escape leaves it).
(function () {
  "use strict";

  var queue = document.getElementById("queue");
  var conversation = document.getElementById("composer");

  var QUEUE_KEYS = [
    ["j / k", "Next / previous conversation"],
    ["o or Enter", "Open the highlighted conversation"],
    ["x", "Select or unselect the highlighted row"],
    ["a", "Assign the selected (or highlighted) conversations to me"],
    ["e", "Solve the selected (or highlighted) conversations (asks first)"],
    ["/", "Search (message text too)"],
    ["?", "Show or hide this help"],
    ["Esc", "Close this help, or leave a field"],
  ];
  var CONVERSATION_KEYS = [
    ["r", "Write a reply"],
    ["e", "Solve"],
    ["a", "Assign to me"],
    ["u", "Back to the queue"],
    ["Ctrl+Enter", "Send the reply (in the reply box)"],
    ["?", "Show or hide this help"],
    ["Esc", "Close this help, or leave a field"],
  ];

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  // --- Help overlay ------------------------------------------------------------------------------
  var overlay = null;
  var opener = null;

  function buildOverlay() {
    overlay = document.createElement("div");
    overlay.className = "shortcuts-overlay";
    overlay.hidden = true;
    var dialog = document.createElement("div");
    dialog.className = "shortcuts-dialog";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", "shortcuts-title");
    dialog.tabIndex = -1;
    var title = document.createElement("h2");
    title.id = "shortcuts-title";
    title.textContent = "Keyboard shortcuts";
    dialog.appendChild(title);
    var list = document.createElement("dl");
    (queue ? QUEUE_KEYS : CONVERSATION_KEYS).forEach(function (pair) {
      var dt = document.createElement("dt");
      pair[0].split(" ").forEach(function (part) {
        if (part === "/" && pair[0] !== "/") {
          dt.appendChild(document.createTextNode(" / "));
        } else if (part === "or") {
          dt.appendChild(document.createTextNode(" or "));
        } else {
          var kbd = document.createElement("kbd");
          kbd.textContent = part;
          dt.appendChild(kbd);
        }
      });
      var dd = document.createElement("dd");
      dd.textContent = pair[1];
      list.appendChild(dt);
      list.appendChild(dd);
    });
    dialog.appendChild(list);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "button";
    close.textContent = "Close";
    close.addEventListener("click", toggleHelp);
    dialog.appendChild(close);
    overlay.appendChild(dialog);
    overlay.addEventListener("click", function (event) {
      if (event.target === overlay) toggleHelp();
    });
    document.body.appendChild(overlay);
  }

  function toggleHelp() {
    if (!overlay) buildOverlay();
    if (overlay.hidden) {
      opener = document.activeElement;
      overlay.hidden = false;
      overlay.querySelector(".shortcuts-dialog").focus();
    } else {
      overlay.hidden = true;
      if (opener && opener.focus) opener.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-shortcuts-help]");
    if (button) toggleHelp();
  });

  // --- Queue -------------------------------------------------------------------------------------
  var cursor = -1;

  function rows() {
    var table = document.querySelector("table.queue");
    return table ? Array.prototype.slice.call(table.querySelectorAll("tbody tr")) : [];
  }

  function moveCursor(step) {
    var all = rows();
    if (!all.length) return;
    var current = document.querySelector("table.queue tr.is-cursor");
    cursor = current ? all.indexOf(current) : -1;
    cursor = Math.max(0, Math.min(all.length - 1, cursor + step));
    all.forEach(function (row, index) {
      row.classList.toggle("is-cursor", index === cursor);
      if (index === cursor) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    var row = all[cursor];
    row.scrollIntoView({ block: "nearest" });
    var link = row.querySelector(".subject a");
    if (link) link.focus({ preventScroll: true });
  }

  function cursorRow() {
    return document.querySelector("table.queue tr.is-cursor");
  }

  function selectedOrCursor() {
    var picked = document.querySelectorAll("table.queue tbody input[name=ids]:checked");
    if (picked.length) return true;
    var row = cursorRow();
    if (!row) return false;
    row.querySelector("input[name=ids]").checked = true;
    updateBulk();
    return true;
  }

  function bulkSubmit(action) {
    var form = document.getElementById("bulk-form");
    if (!form || !selectedOrCursor()) return;
    form.elements.action.value = action;
    updateBulk();
    form.requestSubmit ? form.requestSubmit() : form.submit();
  }

  function updateBulk() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var count = form.querySelectorAll("tbody input[name=ids]:checked").length;
    var label = document.getElementById("bulk-count");
    if (label) {
      label.textContent = count
        ? count + " selected"
        : "Select rows to act on several at once";
    }
    var action = form.elements.action.value;
    form.elements.agent.hidden = action !== "assign";
    form.elements.tag.hidden = action !== "tag";
    form.elements.priority.hidden = action !== "priority";
    var block = form.querySelector(".bulk-block");
    if (block) block.hidden = action !== "spam";
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "pick-all") {
      var on = event.target.checked;
      document.querySelectorAll("table.queue tbody input[name=ids]").forEach(function (box) {
        box.checked = on;
      });
    }
    if (event.target.closest && event.target.closest("#bulk-form")) updateBulk();
  });
  // The queue re-renders itself every 15 s: keep the bar right after each swap.
  document.body.addEventListener("htmx:afterSwap", updateBulk);
  updateBulk();

  function queueKey(event) {
    var key = event.key;
    if (key === "j") moveCursor(1);
    else if (key === "k") moveCursor(-1);
    else if (key === "o" || key === "Enter") {
      var row = cursorRow();
      if (!row) return false;
      window.location.href = row.getAttribute("data-href");
    } else if (key === "x") {
      var current = cursorRow();
      if (!current) return false;
      var box = current.querySelector("input[name=ids]");
      box.checked = !box.checked;
      updateBulk();
    } else if (key === "a") bulkSubmit("assign_me");
    else if (key === "e") bulkSubmit("solve");
    else if (key === "/") {
      var search = document.getElementById("queue-q");
      if (!search) return false;
      search.focus();
      search.select();
    } else return false;
    return true;
  }

  // A poll that re-renders the queue must not hold the agent's place: pause it while a row is
  // highlighted or selected.
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail && event.detail.elt;
    if (!target || target.id !== "queue") return;
    if (cursorRow() || document.querySelector("table.queue tbody input[name=ids]:checked")) {
      event.preventDefault();
    }
  });

  // --- Conversation page -------------------------------------------------------------------------
  function submitForm(id) {
    var form = document.getElementById(id);
    if (!form) return false;
    form.requestSubmit ? form.requestSubmit() : form.submit();
    return true;
  }

  function conversationKey(event) {
    var key = event.key;
    if (key === "r") {
      var body = document.getElementById("reply-body");
      if (!body) return false;
      body.focus();
    } else if (key === "e") return submitForm("solve-form");
    else if (key === "a") return submitForm("take-form");
    else if (key === "u") window.location.href = "/";
    else return false;
    return true;
  }

  if (conversation) {
    conversation.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.id === "reply-body") {
        event.preventDefault();
        var send = conversation.querySelector("button[name=internal][value='']");
        conversation.requestSubmit ? conversation.requestSubmit(send) : conversation.submit();
      }
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Escape") {
      if (overlay && !overlay.hidden) {
        toggleHelp();
        event.preventDefault();
      } else if (typing(event.target)) {
        event.target.blur();
      }
      return;
    }
    if (typing(event.target)) return;
    if (overlay && !overlay.hidden && event.key !== "?") return;
    if (event.key === "?") {
      toggleHelp();
      event.preventDefault();
      return;
    }
    var handled = queue ? queueKey(event) : conversation ? conversationKey(event) : false;
    if (handled) event.preventDefault();
  });
})();
