// The live alert queue: re-read the rows whenever the hub's change feed says alerts
// changed, and give a visible and audible cue when an undecided alert appeared.
// The plate hits queue uses it too: its rows element names its own rows URL, event
// stream, kinds of change and noun (data-rows, data-events, data-kinds, data-noun).
// Browsers block sound until the page was interacted with, so the beep is armed by
// the operator's first click or key press.
"use strict";
(function () {
  const rows = document.getElementById("queue-rows");
  const cue = document.getElementById("new-alert-cue");
  const hint = document.getElementById("sound-hint");
  if (!rows) return;
  const rowsUrl = rows.dataset.rows || "/alerts/rows";
  const eventsUrl = rows.dataset.events || "/alerts/events";
  const kinds = (rows.dataset.kinds || "alert.stored alert.adjudicated alerts.purged").split(" ");
  const noun = rows.dataset.noun || "alert";
  let audio = null;

  function arm() {
    if (!audio) {
      audio = new AudioContext();
      if (hint) hint.hidden = true;
    }
  }
  document.addEventListener("pointerdown", arm);
  document.addEventListener("keydown", arm);

  function beep() {
    if (!audio) return;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.3);
  }

  function openIds() {
    return new Set(Array.from(rows.querySelectorAll("tr[data-open] a"), (a) => a.getAttribute("href")));
  }

  let pending = false;
  let again = false;
  async function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    try {
      const before = openIds();
      const reply = await fetch(rowsUrl + window.location.search, { credentials: "same-origin" });
      if (reply.status === 401) { window.location.assign("/login"); return; }
      if (!reply.ok) return;
      // Server-rendered and escaped by the console's templates.
      rows.innerHTML = await reply.text();
      const added = Array.from(openIds()).filter((id) => !before.has(id));
      if (added.length > 0) {
        cue.textContent = added.length === 1 ? "New " + noun : added.length + " new " + noun + "s";
        cue.hidden = false;
        cue.classList.remove("flash");
        void cue.offsetWidth;
        cue.classList.add("flash");
        beep();
      }
    } finally {
      pending = false;
      if (again) { again = false; refresh(); }
    }
  }

  const events = new EventSource(eventsUrl);
  for (const kind of [...kinds, "changed", "resync"]) {
    events.addEventListener(kind, refresh);
  }
  events.addEventListener("open", refresh);
  events.addEventListener("logged-out", () => { events.close(); window.location.assign("/login"); });
})();
