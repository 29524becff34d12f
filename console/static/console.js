// auditpipe console: the live trail (server-sent events). Every page works
// without this script; it only appends the events that arrive.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var list = document.getElementById("trail");
  if (!list || !window.EventSource) {
    return;
  }
  var status = document.getElementById("trail-status");
  var src = new EventSource(list.getAttribute("data-src"));
  src.addEventListener("trail", function (m) {
    var e = JSON.parse(m.data);
    if (list.querySelector('li[data-id="' + e.id + '"]')) {
      return;
    }
    var li = document.createElement("li");
    li.setAttribute("data-id", e.id);
    var t = document.createElement("time");
    t.textContent = e.time;
    var h = document.createElement("span");
    h.className = "host";
    h.textContent = e.host;
    var k = document.createElement("span");
    k.className = "kind";
    k.textContent = e.event;
    var c = document.createElement("code");
    c.textContent = e.text;
    li.append(t, " ", h, " ", k, " ", c);
    list.appendChild(li);
  });
  src.addEventListener("trailerror", function (m) {
    status.textContent = JSON.parse(m.data);
  });
  src.addEventListener("open", function () {
    status.textContent = "Live: new commands and keystrokes appear below as the store receives them.";
  });
  window.addEventListener("pagehide", function () {
    src.close();
  });
});
