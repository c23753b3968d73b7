// A table kept current from the hub's change feed: the tbody names where its rows
// come from (data-rows) and the event stream that says when to re-read them
// (data-events). Used by the fleet page.
"use strict";
(function () {
  const rows = document.getElementById("live-rows");
  if (!rows) return;
  let pending = false;
  let again = false;
  async function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    try {
      const reply = await fetch(rows.dataset.rows, { credentials: "same-origin" });
      if (reply.status === 401) { window.location.assign("/login"); return; }
      // Server-rendered and escaped by the console's templates.
      if (reply.ok) rows.innerHTML = await reply.text();
    } finally {
      pending = false;
      if (again) { again = false; refresh(); }
    }
  }
  const events = new EventSource(rows.dataset.events);
  events.onmessage = refresh;
  for (const kind of ["device.status", "device.key", "changed", "resync"]) {
    events.addEventListener(kind, refresh);
  }
  events.addEventListener("open", refresh);
  events.addEventListener("logged-out", () => { events.close(); window.location.assign("/login"); });
  // "Last heard … s ago" ages even when nothing changes.
  window.setInterval(refresh, 15000);
})();
