/*
 * The chat socket, opened as soon as this small script arrives (issue 22): on a phone network the page's other
 * scripts take a second or more to come, and the socket's handshake overlaps them instead of following them.
 * connection.js adopts it, with whatever the server sent meanwhile, when it starts; a socket that closed before then
 * is left alone and connection.js opens its own.
 *
 * Loaded on its own (async, no imports: an import would cost another round trip), so it names its two hooks itself;
 * hooks.js declares them (ID.chat, ATTR.socketUrl, EARLY_SOCKET).
 */
const chat = document.getElementById("chat");
const address = chat && chat.getAttribute("ws-connect");
if (address && typeof WebSocket === "function") {
  const url = new URL(address, window.location.href).href.replace(/^http/, "ws");
  const ws = new WebSocket(url);
  const frames = [];
  const keep = (evt) => frames.push(evt);
  ws.addEventListener("message", keep);
  window[Symbol.for("vizochok.early-socket")] = {
    url,
    ws,
    /** The socket's frames so far; from now on they go to whoever adopted it. */
    take() {
      ws.removeEventListener("message", keep);
      return frames.splice(0);
    },
  };
}
