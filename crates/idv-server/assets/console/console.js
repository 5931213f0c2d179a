// IdentityVault console: the few behaviours pages need, attached without
// inline script (the Content-Security-Policy allows none).
(function () {
  "use strict";
  var root = document.documentElement;
  try {
    var saved = localStorage.getItem("idv-theme");
    if (saved === "light" || saved === "dark") { root.setAttribute("data-theme", saved); }
  } catch (e) { /* storage may be off */ }

  function dark() {
    var t = root.getAttribute("data-theme");
    if (t) { return t === "dark"; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function selected() {
    return document.querySelectorAll("input.pick:checked").length;
  }

  function updateCount() {
    var out = document.getElementById("selected-count");
    if (out) { out.textContent = selected() + " selected"; }
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t && t.id === "theme-toggle") {
      var next = dark() ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("idv-theme", next); } catch (e) { /* ignore */ }
    }
  });

  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t && t.id === "select-all") {
      document.querySelectorAll("input.pick").forEach(function (c) { c.checked = t.checked; });
    }
    updateCount();
  });

  // A bulk action says how many agents it will change before it does.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    // getAttribute: the form's `id` inputs shadow `form.id`.
    if (!form || form.getAttribute("id") !== "bulk") { return; }
    var n = selected();
    var action = document.getElementById("bulk-action");
    var verb = action ? action.value : "change";
    if (n === 0) {
      ev.preventDefault();
      window.alert("Select at least one agent.");
      return;
    }
    if (!window.confirm(verb.charAt(0).toUpperCase() + verb.slice(1) + " " + n + " agent(s)?")) {
      ev.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", updateCount);
  document.addEventListener("htmx:afterSettle", updateCount);
})();
