// voxguard console: the live security events page's one script (served as
// /console/static/live.js; the Content-Security-Policy allows no inline script).
// It opens the page's event stream and puts each event at the top of the list, as text only.
// When the stream ends for good (signed out, session over, too many streams), it says so.
(function () {
  "use strict";
  var list = document.getElementById("live-events");
  var status = document.getElementById("live-status");
  if (!list || !status) {
    return;
  }
  if (!window.EventSource) {
    status.textContent = "This browser cannot receive live events: reload the page to see new ones.";
    return;
  }
  var MAX_SHOWN = 500;

  function utc(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // The same line the server writes for the events listed when the page loaded.
  function describe(e) {
    var parts = [utc(e.time_ms), e.kind];
    if (e.outcome) { parts.push(e.outcome); }
    if (e.reason) { parts.push(e.reason); }
    var place = [e.agent, e["function"]].filter(Boolean).join("/");
    if (place) { parts.push(place); }
    if (e.caller) { parts.push("caller " + e.caller); }
    if (e.source) { parts.push("from " + e.source); }
    if (e.operator) { parts.push("by " + e.operator + (e.role ? " (" + e.role + ")" : "")); }
    if (e.count && e.count > 1) { parts.push("\u00d7" + e.count); }
    if (e.detail) { parts.push(e.detail); }
    return parts.join(" \u00b7 ");
  }

  var after = list.getAttribute("data-after") || "";
  var source = new EventSource("/console/live/events?after=" + encodeURIComponent(after));
  source.onopen = function () {
    status.textContent = "Connected: new events appear at the top as they happen.";
  };
  source.onmessage = function (message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (ignored) {
      return;
    }
    var empty = document.getElementById("live-empty");
    if (empty) {
      empty.parentNode.removeChild(empty);
    }
    var item = document.createElement("li");
    item.textContent = describe(event);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > MAX_SHOWN) {
      list.removeChild(list.lastChild);
    }
  };
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) {
      status.textContent = "Live updates have stopped (signed out, session ended, or too many open live pages). Reload the page to continue.";
    } else {
      status.textContent = "Connection lost; reconnecting\u2026";
    }
  };
})();
