// The bell in the top bar and desktop notifications.
//
// The bell (#notification-bell) re-renders itself through an htmx poll; each poll carries the
// newest unread notifications as hidden .bell-item spans. Those newer than the last one this
// browser has seen (localStorage, shared by the agent's tabs) become a desktop notification
// when the agent switched them on (a button on the notifications and settings pages) and the
// browser allows them. What the page was rendered with is not new.
(function () {
  "use strict";

  var OPT_IN = "sd-desktop-notifications";

  function supported() {
    return "Notification" in window;
  }

  function desktopOn() {
    return supported() && Notification.permission === "granted" && localStorage.getItem(OPT_IN) === "on";
  }

  function seenKey(bell) {
    return "sd-notifications-seen-" + bell.getAttribute("data-user");
  }

  function seen(bell) {
    return parseInt(localStorage.getItem(seenKey(bell)) || "0", 10) || 0;
  }

  function markSeen(bell, id) {
    if (id > seen(bell)) localStorage.setItem(seenKey(bell), String(id));
  }

  function show(item) {
    var note = new Notification(item.getAttribute("data-title"), {
      body: item.getAttribute("data-body") || "",
      tag: "supportdesk-" + item.getAttribute("data-id"),
    });
    note.onclick = function () {
      window.focus();
      window.location.href = item.getAttribute("data-open");
      note.close();
    };
  }

  function announce(bell) {
    var last = seen(bell);
    var newest = last;
    var items = Array.prototype.slice.call(bell.querySelectorAll(".bell-item")).reverse();
    items.forEach(function (item) {
      var id = parseInt(item.getAttribute("data-id"), 10) || 0;
      if (id <= last) return;
      newest = Math.max(newest, id);
      if (desktopOn()) show(item);
    });
    markSeen(bell, newest);
  }

  // The tab's title counts what is unread too: "(3) Queue · Supportdesk".
  function retitle(bell) {
    var unread = parseInt(bell.getAttribute("data-unread"), 10) || 0;
    var title = document.title.replace(/^\(\d+\+?\) /, "");
    document.title = unread ? "(" + (unread > 99 ? "99+" : unread) + ") " + title : title;
  }

  var bell = document.getElementById("notification-bell");
  if (bell) {
    markSeen(bell, parseInt(bell.getAttribute("data-latest-id"), 10) || 0);
    retitle(bell);
  }

  // A poll answered by the login page (the session ended) keeps the old bell.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var xhr = event.detail.xhr;
    if (target && target.id === "notification-bell" && xhr && xhr.responseURL.indexOf("/notifications/badge/") === -1) {
      event.detail.shouldSwap = false;
    }
  });
  document.body.addEventListener("htmx:load", function (event) {
    var element = event.detail.elt;
    if (element && element.id === "notification-bell") {
      announce(element);
      retitle(element);
    }
  });

  // The opt-in control: [data-desktop-optin] with [data-desktop-state] and [data-desktop-toggle].
  function render(box) {
    var state = box.querySelector("[data-desktop-state]");
    var toggle = box.querySelector("[data-desktop-toggle]");
    box.hidden = false;
    if (!supported()) {
      state.textContent = "This browser cannot show desktop notifications.";
      toggle.hidden = true;
      return;
    }
    toggle.hidden = false;
    if (desktopOn()) {
      state.textContent = "Desktop notifications are on in this browser.";
      toggle.textContent = "Turn off desktop notifications";
    } else if (Notification.permission === "denied") {
      state.textContent = "Your browser blocks notifications from this site: allow them in the site's settings, then turn them on here.";
      toggle.textContent = "Turn on desktop notifications";
    } else {
      state.textContent = "Desktop notifications are off in this browser.";
      toggle.textContent = "Turn on desktop notifications";
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-desktop-optin]"), function (box) {
    render(box);
    box.querySelector("[data-desktop-toggle]").addEventListener("click", function () {
      if (desktopOn()) {
        localStorage.removeItem(OPT_IN);
        render(box);
        return;
      }
      Notification.requestPermission().then(function (permission) {
        if (permission === "granted") localStorage.setItem(OPT_IN, "on");
        render(box);
      });
    });
  });
})();
