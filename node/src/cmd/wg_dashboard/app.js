// alp dashboard: live updates and approvals. Served from the binary; the
// page's content security policy allows no other script.
(() => {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const base = live.dataset.base;
  const message = document.getElementById("message");
  let busy = false;
  let again = false;
  let deferred = false;
  // Replaces the live part with the node's current view (escaped by the
  // server; nothing here builds markup from data).
  async function refresh() {
    if (busy) { again = true; return; }
    // Never move the approvals under a person's pointer or typing: a click
    // must land on the row they read. Try again shortly.
    if (live.querySelector(".approvals:hover, .approvals :focus")) {
      if (!deferred) {
        deferred = true;
        setTimeout(() => { deferred = false; refresh(); }, 300);
      }
      return;
    }
    busy = true;
    try {
      const r = await fetch(base + "/live", { cache: "no-store" });
      // The pointer may have come to the approvals meanwhile: keep them.
      if (r.ok && live.querySelector(".approvals:hover, .approvals :focus")) {
        again = true;
        await new Promise((done) => setTimeout(done, 300));
      } else if (r.ok) {
        // Keep what a person is typing into a reason box.
        const typed = new Map();
        live.querySelectorAll("tr[data-approval] input[name=reason]").forEach((i) => {
          if (i.value) typed.set(i.closest("tr").dataset.approval, i.value);
        });
        live.innerHTML = await r.text();
        typed.forEach((v, id) => {
          const row = live.querySelector(`tr[data-approval="${CSS.escape(id)}"] input[name=reason]`);
          if (row) row.value = v;
        });
        document.body.dataset.updated = String(Date.now());
      }
    } catch (e) {
      document.body.dataset.stream = "offline";
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  if (live.dataset.poll) {
    // The first page: peers and transfers change without events.
    setInterval(refresh, Number(live.dataset.poll));
    document.body.dataset.stream = "polling";
  } else {
    const events = new EventSource(base + "/events");
    events.onopen = () => { document.body.dataset.stream = "live"; };
    events.onmessage = () => refresh();
    events.onerror = () => { document.body.dataset.stream = "reconnecting"; };
  }
  live.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-decide]");
    if (!button) return;
    const row = button.closest("tr");
    const reason = row ? row.querySelector("input[name=reason]") : null;
    const approve = button.dataset.decide === "approve";
    row && row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const r = await fetch(base + "/decide", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: button.dataset.id, approve, reason: reason ? reason.value : "" }),
      });
      const answer = await r.json();
      message.textContent = answer.message;
      message.className = r.ok ? "ok" : "bad";
    } catch (err) {
      message.textContent = "the dashboard did not answer: " + err;
      message.className = "bad";
    }
    refresh();
  });
})();
