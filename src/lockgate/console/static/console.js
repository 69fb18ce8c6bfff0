// lockgate console: live updates on top of plain pages. Everything works without this file.
"use strict";

function statusBadge(value) {
  const span = document.createElement("span");
  span.className = "status s-" + value.toLowerCase();
  span.dataset.status = "";
  span.textContent = value;
  return span;
}

function followRun(section) {
  const url = section.dataset.live;
  const note = section.querySelector("[data-live-note]");
  const source = new EventSource(url);
  source.addEventListener("log", (event) => {
    const line = JSON.parse(event.data);
    const pre = document.querySelector(`[data-log="${CSS.escape(line.step)}"]`);
    if (!pre) return;
    pre.hidden = false;
    const row = document.createElement("span");
    row.className = "line l-" + line.level;
    // line.html was escaped by the server (text, with colour classes only).
    row.innerHTML = line.html;
    pre.appendChild(row);
    applySearch();
    if (pre.scrollHeight - pre.scrollTop - pre.clientHeight < 80) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    const runStatus = document.querySelector("[data-run-status]");
    if (runStatus) runStatus.replaceChildren(statusBadge(data.status));
    for (const [name, step] of Object.entries(data.steps)) {
      const li = document.querySelector(`[data-step="${CSS.escape(name)}"] [data-step-status]`);
      if (li) li.replaceChildren(statusBadge(step.status));
    }
  });
  source.addEventListener("end", (event) => {
    source.close();
    const data = JSON.parse(event.data);
    if (note) note.textContent = data.status ? `The run ended: ${data.status}.` : "Live updates stopped: sign in again.";
    // A run that ended while watched: show its final page (events, errors, times) once.
    if (data.status && !("finished" in section.dataset)) window.location.reload();
  });
}

function applySearch() {
  const box = document.querySelector("[data-log-search]");
  if (!box) return;
  const q = box.value.trim().toLowerCase();
  for (const line of document.querySelectorAll("pre[data-log] .line")) {
    line.classList.toggle("hidden-by-search", q !== "" && !line.textContent.toLowerCase().includes(q));
  }
}

function refreshRows(table) {
  const url = table.dataset.liveRows;
  setInterval(async () => {
    if (document.hidden) return;
    const answer = await fetch(url, { credentials: "same-origin" });
    if (!answer.ok) return;
    // The fragment is a bare <tbody>: parse it inside a table, where it belongs.
    const doc = new DOMParser().parseFromString(`<table>${await answer.text()}</table>`, "text/html");
    const rows = doc.querySelector("tbody");
    const current = table.querySelector("tbody");
    if (rows && current) current.replaceWith(document.importNode(rows, true));
  }, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const section of document.querySelectorAll("[data-live]")) followRun(section);
  for (const table of document.querySelectorAll("[data-live-rows]")) refreshRows(table);
  const box = document.querySelector("[data-log-search]");
  if (box) box.addEventListener("input", applySearch);
});
