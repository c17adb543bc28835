// fleetaudit report: filter, search, sort, deep links, print. Inlined verbatim into the page
// and allowed by the CSP by its sha256. It reads text and computed data-* values only, and
// writes only hidden/open flags, aria-sort and plain textContent: never markup.
(function () {
  "use strict";
  var doc = document;
  var byId = function (id) { return doc.getElementById(id); };
  var controls = byId("controls");
  var list = byId("hosts-rows");
  var details = byId("hosts-details");

  // Deep links work even on a page without hosts (a finding id, #summary).
  function openAncestors(el) {
    for (var d = el.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) {
      d.open = true;
    }
    if (el.tagName === "DETAILS") { el.open = true; }
    var chain = el.tagName === "TBODY" ? el.querySelector("details.chain") : null;
    if (chain) { chain.open = true; }
  }

  var hosts = [];
  var filters = {};
  if (controls && list && details) {
    var sections = {};
    Array.prototype.forEach.call(details.children, function (s) { sections[s.getAttribute("data-i")] = s; });
    hosts = Array.prototype.map.call(list.children, function (row) {
      var groups = row.getAttribute("data-groups");
      var kinds = row.getAttribute("data-kinds");
      return {
        row: row,
        section: sections[row.getAttribute("data-i")] || null,
        index: +row.getAttribute("data-i"),
        status: row.getAttribute("data-status"),
        srank: +row.getAttribute("data-srank"),
        worst: +row.getAttribute("data-worst"),
        ports: +row.getAttribute("data-ports"),
        findings: +row.getAttribute("data-findings"),
        groups: groups ? groups.split(" ") : [],
        kinds: kinds ? kinds.split(" ") : [],
        name: row.children[0].textContent,
        address: row.children[1].textContent,
        text: null
      };
    });
    filters = { q: byId("f-q"), group: byId("f-group"), status: byId("f-status"), sev: byId("f-sev"), kind: byId("f-kind") };
    controls.hidden = false;
    // A deep-link target must not land under the sticky filter bar, however tall it wraps.
    var pad = function () { doc.documentElement.style.scrollPaddingTop = controls.offsetHeight + 8 + "px"; };
    pad();
    window.addEventListener("resize", pad);
  }
  var count = byId("f-count");
  var none = byId("f-none");

  // Search text of a host: its row and its whole section, read once, on the first search.
  function haystack(h) {
    if (h.text === null) {
      h.text = (h.row.textContent + "\n" + (h.section ? h.section.textContent : "")).toLowerCase();
    }
    return h.text;
  }

  function matches(h, f) {
    if (f.group === "none" ? h.groups.length !== 0 : f.group && h.groups.indexOf(f.group) < 0) { return false; }
    if (f.status && h.status !== f.status) { return false; }
    if (f.sev !== null && (f.sev === f.nothing ? h.worst !== f.nothing : h.worst > f.sev)) { return false; }
    if (f.kind && h.kinds.indexOf(f.kind) < 0) { return false; }
    for (var t = 0; t < f.terms.length; t++) {
      if (haystack(h).indexOf(f.terms[t]) < 0) { return false; }
    }
    return true;
  }

  function apply() {
    var needle = filters.q.value.trim().toLowerCase();
    var sevOptions = filters.sev.options;
    var f = {
      terms: needle ? needle.split(/\s+/) : [],
      group: filters.group.value,
      status: filters.status.value,
      sev: filters.sev.value === "" ? null : +filters.sev.value,
      nothing: +sevOptions[sevOptions.length - 1].value,
      kind: filters.kind.value
    };
    var shown = 0;
    for (var i = 0; i < hosts.length; i++) {
      var h = hosts[i];
      var ok = matches(h, f);
      if (h.row.hidden === ok) {
        h.row.hidden = !ok;
        if (h.section) { h.section.hidden = !ok; }
      }
      if (ok) { shown++; }
    }
    var all = shown === hosts.length;
    count.textContent = all ? "all " + hosts.length + " hosts" : shown + " of " + hosts.length + " hosts";
    count.className = all ? "" : "filtered";
    none.hidden = shown !== 0;
  }

  function reset() {
    filters.q.value = "";
    ["group", "status", "sev", "kind"].forEach(function (k) { filters[k].value = ""; });
    apply();
  }

  // Sorting: text columns by a numeric-aware collation (10.0.0.9 before 10.0.0.11),
  // counts largest first; risk is the report's own order (worst first, ranked by the
  // report from the counts at each severity), which also breaks every tie.
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var sortKeys = {
    name: function (a, b) { return collator.compare(a.name, b.name); },
    address: function (a, b) { return collator.compare(a.address, b.address); },
    status: function (a, b) { return a.srank - b.srank; },
    ports: function (a, b) { return b.ports - a.ports; },
    severity: function (a, b) { return a.index - b.index; },
    findings: function (a, b) { return b.findings - a.findings; }
  };
  // The page arrives sorted by the header marked aria-sort (risk, worst first).
  var initial = doc.querySelector("#hosts-table [data-key][aria-sort]");
  var sorted = { key: initial ? initial.getAttribute("data-key") : null, dir: 1 };

  // Rows and sections are reordered with CSS `order` in their flex containers: moving
  // them in the DOM would make the browser rebuild every moved subtree.
  function sortBy(key) {
    var dir = sorted.key === key ? -sorted.dir : 1;
    var cmp = sortKeys[key];
    hosts.sort(function (a, b) { return dir * cmp(a, b) || a.index - b.index; });
    hosts.forEach(function (h, k) {
      h.row.style.order = k;
      if (h.section) { h.section.style.order = k; }
    });
    sorted = { key: key, dir: dir };
    Array.prototype.forEach.call(doc.querySelectorAll("#hosts-table [data-key]"), function (th) {
      if (th.getAttribute("data-key") === key) {
        var natural = key === "ports" || key === "findings" ? "descending" : "ascending";
        var other = natural === "ascending" ? "descending" : "ascending";
        th.setAttribute("aria-sort", dir === 1 ? natural : other);
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  // Following a link to a host, port or finding shows it: filters that hide it are cleared
  // and the evidence chain holding it is opened.
  function reveal() {
    var id;
    try { id = decodeURIComponent(location.hash.slice(1)); } catch (e) { return; }
    var target = id ? byId(id) : null;
    if (!target) { return; }
    var section = target.closest("section.host");
    if (section && section.hidden) { reset(); }
    openAncestors(target);
    target.scrollIntoView({ block: "start" });
  }

  function setChains(open) {
    hosts.forEach(function (h) {
      if (h.section && !h.section.hidden) {
        Array.prototype.forEach.call(h.section.querySelectorAll("details.chain"), function (d) { d.open = open; });
      }
    });
  }

  if (hosts.length) {
    var timer = null;
    filters.q.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(apply, 80);
    });
    // Enter (or leaving the box) applies at once.
    filters.q.addEventListener("change", function () { clearTimeout(timer); apply(); });
    ["group", "status", "sev", "kind"].forEach(function (k) { filters[k].addEventListener("change", apply); });
    byId("f-clear").addEventListener("click", reset);
    byId("x-open").addEventListener("click", function () { setChains(true); });
    byId("x-close").addEventListener("click", function () { setChains(false); });
    Array.prototype.forEach.call(doc.querySelectorAll("#hosts-table [data-key] button"), function (b) {
      b.addEventListener("click", function () { sortBy(b.parentElement.getAttribute("data-key")); });
    });
    doc.addEventListener("keydown", function (e) {
      if (e.key === "/" && doc.activeElement === doc.body) { e.preventDefault(); filters.q.focus(); }
    });
    apply();
  }

  window.addEventListener("hashchange", reveal);
  // A click on a link to the current hash fires no hashchange: reveal again anyway.
  doc.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[href^='#']");
    if (a && a.getAttribute("href") === location.hash) { setTimeout(reveal, 0); }
  });
  reveal();

  // Print everything expanded, then restore what the reader had open.
  var opened = [];
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(doc.querySelectorAll("details:not([open])"), function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });
})();
