// batcher's page: drag and drop, the tags field's state, and live progress (server-sent events).
// Plain JavaScript, nothing from the internet; the page works without it (forms post).
"use strict";

(function () {
  const drop = document.getElementById("drop");
  const file = document.getElementById("file");
  const form = document.getElementById("upload-form");
  if (drop && file && form) {
    ["dragenter", "dragover"].forEach((name) =>
      drop.addEventListener(name, (event) => {
        event.preventDefault();
        drop.classList.add("over");
      })
    );
    ["dragleave", "drop"].forEach((name) =>
      drop.addEventListener(name, () => drop.classList.remove("over"))
    );
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        file.files = event.dataTransfer.files;
        form.requestSubmit();
      }
    });
  }

  // "Remove all tags" sends no tags: the field is disabled then, so nobody types in vain.
  const tags = document.getElementById("tags");
  const radios = document.querySelectorAll('input[name="action"]');
  function syncTags() {
    const chosen = document.querySelector('input[name="action"]:checked');
    if (tags) tags.disabled = Boolean(chosen && chosen.value === "remove-all");
  }
  radios.forEach((radio) => radio.addEventListener("change", syncTags));
  syncTags();

  // A run's card follows its run; the rest of the page is this tab's own. When the run ends,
  // only its card and the runs list are redrawn (from the server's page of the finished run):
  // another tab, mid-edit on another file, keeps its file, tags and action.
  const section = document.getElementById("progress");
  if (!section) return;

  // Redraw the run's card and the runs list from the server's page of the run; `then` runs
  // after (with the new card).
  function redraw(attempt, then) {
    fetch(section.dataset.next, { credentials: "same-origin", cache: "no-store" })
      .then((response) => {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then((html) => {
        const fresh = new DOMParser().parseFromString(html, "text/html");
        ["progress", "history"].forEach((id) => {
          const mine = document.getElementById(id);
          const theirs = fresh.getElementById(id);
          if (mine && theirs) mine.replaceWith(document.importNode(theirs, true));
        });
        // A Start held back while the run went on may go now.
        document.querySelectorAll("button[data-after-run]").forEach((button) => {
          button.disabled = false;
          button.removeAttribute("data-after-run");
        });
        if (then) then(document.getElementById("progress"));
      })
      .catch(() => {
        if (attempt < 5) window.setTimeout(() => redraw(attempt + 1, then), 2000);
      });
  }

  // The XLSX copy is written after the run: its link comes when it is ready.
  function watchCopy(card) {
    if (card && card.dataset.xlsx === "writing") {
      window.setTimeout(() => redraw(0, watchCopy), 1500);
    }
  }

  const state = section.dataset.state;
  if (state !== "running" && state !== "stopping") {
    watchCopy(section);
    return;
  }
  const bar = document.getElementById("bar");
  const text = document.getElementById("progress-text");
  const message = document.getElementById("run-message");
  const source = new EventSource("/events?run=" + encodeURIComponent(section.dataset.run));
  source.onmessage = (event) => {
    const snap = JSON.parse(event.data);
    bar.max = Math.max(snap.requests_planned, 1);
    bar.value = snap.requests_done;
    text.textContent = snap.text;
    message.textContent = snap.message;
    section.dataset.state = snap.state;
  };
  function ended(card) {
    const link = document.getElementById("report-csv");
    if (link && document.activeElement === document.body) link.focus();
    watchCopy(card);
  }
  source.addEventListener("done", () => {
    source.close();
    redraw(0, ended);
  });
  source.onerror = () => {
    source.close();
    window.setTimeout(() => redraw(0, ended), 2000);
  };
})();
