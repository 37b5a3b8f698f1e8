// Filtering and search for the case table, and opening a case's evidence from a link.
// The report is complete without it: this only hides rows and opens <details>.
(function () {
  "use strict";
  var filters = document.getElementById("filters");
  var table = document.getElementById("cases");
  if (!filters || !table || !table.tBodies.length) return;
  filters.hidden = false;
  var search = document.getElementById("case-search");
  var verdict = document.getElementById("verdict-filter");
  var count = document.getElementById("filter-count");
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });

  function apply() {
    var query = search.value.trim().toLowerCase();
    var wanted = verdict.value;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var match = (!wanted || rows[i].getAttribute("data-verdict") === wanted) &&
                  (!query || texts[i].indexOf(query) !== -1);
      rows[i].hidden = !match;
      if (match) shown++;
    }
    count.textContent = count.getAttribute("data-template")
      .replace("{shown}", String(shown)).replace("{total}", String(rows.length));
  }

  function openDetails(id) {
    var target = id ? document.getElementById(id) : null;
    if (target && target.tagName === "DETAILS") {
      target.open = true;
      target.scrollIntoView();
    }
  }

  function openTarget() {
    openDetails(decodeURIComponent(window.location.hash.slice(1)));
  }

  // A link to a case opens its evidence at once (hashchange comes later, and not at all when
  // the hash is already that case's).
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest('a[href^="#"]') : null;
    if (link) openDetails(decodeURIComponent(link.getAttribute("href").slice(1)));
  });

  search.addEventListener("input", apply);
  verdict.addEventListener("change", apply);
  window.addEventListener("hashchange", openTarget);
  apply();
  openTarget();
})();
