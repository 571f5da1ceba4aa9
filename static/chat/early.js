/*
 * The chat socket, opened as soon as this small script arrives (issue 22): on a phone network the page's other
 * scripts take a second or more to come, and the socket's handshake overlaps them instead of following them.
 * connection.js adopts it when it starts, with whatever the server sent meanwhile, or its close (an auth close is
 * final there as on any socket).
 *
 * Loaded on its own (async, no imports: an import would cost another round trip), so it names its two hooks itself;
 * hooks.js declares them (ID.chat, ATTR.socketUrl, EARLY_SOCKET).
 */
const chat = document.getElementById("chat");
const address = chat && chat.getAttribute("ws-connect");
const slot = Symbol.for("vizochok.early-socket");
// connection.js marks the slot when it starts: if it came first (async order is not guaranteed), it has a socket.
if (address && typeof WebSocket === "function" && !(slot in window)) {
  const url = new URL(address, window.location.href).href.replace(/^http/, "ws");
  const ws = new WebSocket(url);
  const frames = [];
  const early = { url, ws, closeEvent: null };
  const keep = (evt) => frames.push(evt);
  const ended = (evt) => {
    early.closeEvent = evt;
  };
  ws.addEventListener("message", keep);
  ws.addEventListener("close", ended);
  /** The socket's frames so far; from now on they (and its close) go to whoever adopted it. */
  early.take = () => {
    ws.removeEventListener("message", keep);
    ws.removeEventListener("close", ended);
    return frames.splice(0);
  };
  window[slot] = early;
}
