// A table re-read from the hub every two seconds: the tbody names where its rows come
// from (data-rows). Used by the Live page, whose leases count down and whose rows change
// when a camera's receipt arrives (not a database change, so no event stream).
"use strict";
(function () {
  const rows = document.getElementById("poll-rows");
  if (!rows) return;
  async function refresh() {
    const reply = await fetch(rows.dataset.rows, { credentials: "same-origin" });
    if (reply.status === 401) { window.location.assign("/login"); return; }
    // Server-rendered and escaped by the console's templates.
    if (reply.ok) rows.innerHTML = await reply.text();
  }
  window.setInterval(refresh, 2000);
})();
