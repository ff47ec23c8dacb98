// The status page's only script: it keeps the cards current from the server's stream. Each event
// carries a card the server rendered; nothing is drawn here. EventSource reconnects by itself, and
// the stream starts with every card, so a page that lost it catches up.
"use strict";
(() => {
  const root = document.documentElement;
  const list = document.getElementById("rollouts");
  if (!list) return;
  const stream = new EventSource("/page/events" + location.search);
  stream.onopen = () => { root.dataset.live = "connected"; };
  // EventSource gives up for good on an answer that is no stream (a 401 or a 429).
  stream.onerror = () => {
    root.dataset.live = stream.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
  };
  // Cards stay in the server's order: by namespace, then name.
  const before = (a, b) =>
    a.dataset.namespace < b.dataset.namespace ||
    (a.dataset.namespace === b.dataset.namespace && a.dataset.name < b.dataset.name);
  stream.addEventListener("card", (event) => {
    const card = JSON.parse(event.data);
    const shown = document.getElementById(card.id);
    if (shown) {
      shown.outerHTML = card.html;
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = card.html;
    const added = holder.firstElementChild;
    const next = Array.from(list.children).find((other) => before(added, other));
    list.insertBefore(added, next || null);
  });
  stream.addEventListener("gone", (event) => {
    const gone = document.getElementById(JSON.parse(event.data).id);
    if (gone) gone.remove();
  });
  // The token was revoked or the session ended: back to the sign-in form.
  stream.addEventListener("signed-out", () => { location.assign("/"); });
})();
