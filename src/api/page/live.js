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
  stream.onerror = () => { root.dataset.live = "reconnecting"; };
  stream.addEventListener("card", (event) => {
    const card = JSON.parse(event.data);
    const shown = document.getElementById(card.id);
    if (shown) {
      shown.outerHTML = card.html;
    } else {
      list.insertAdjacentHTML("beforeend", card.html);
    }
  });
  stream.addEventListener("gone", (event) => {
    const gone = document.getElementById(JSON.parse(event.data).id);
    if (gone) gone.remove();
  });
  // The token was revoked or the session ended: back to the sign-in form.
  stream.addEventListener("signed-out", () => { location.assign("/"); });
})();
