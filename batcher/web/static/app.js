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

  const section = document.getElementById("progress");
  if (!section) return;
  const state = section.dataset.state;
  if (state !== "running" && state !== "stopping") return;
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
  source.addEventListener("done", () => {
    source.close();
    // The finished run, its counts and the report's links, rendered by the server.
    window.location.assign(section.dataset.next);
  });
  source.onerror = () => {
    source.close();
    window.setTimeout(() => window.location.assign(section.dataset.next), 2000);
  };
})();
