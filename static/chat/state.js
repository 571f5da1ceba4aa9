/*
 * #chat[data-state] (docs/ui-contract.md): connecting, ready, busy, offline, error. One place sets it, from two
 * inputs: whether the socket is open (connection.js) and the conversation's turn state the server sends
 * (data-item="turn-state", feed.js). Whoever shows something by state listens to the STATE_EVENT on #chat.
 */
import { ID } from "./hooks.js";

const chat = document.getElementById(ID.chat);
export const STATE_EVENT = "chat:state";

export const session = {
  /** The socket is open and caught up enough to send. */
  open: false,
  /** The server's turn state: "ready" or "busy". */
  turn: (document.getElementById(ID.turnState) || { dataset: {} }).dataset.state || "ready",
  /** Sends made while offline (one may wait for the connection). */
  queuedWhileOffline: 0,
};

export function currentState() {
  return chat.dataset.state;
}

export function setState(state) {
  chat.dataset.state = state;
  document.getElementById(ID.banner).hidden = !(state === "offline" || state === "error");
  if (state === "ready") {
    session.queuedWhileOffline = 0;
    // Focus nowhere (the page just loaded, or what had it went away): the input takes it. Focus somewhere else (a
    // card's Add, the cart) stays there: moving it would pop a phone's keyboard up.
    const textarea = document.getElementById(ID.textarea);
    const active = document.activeElement;
    if (!active || active === document.body) textarea.focus({ preventScroll: true });
  }
  chat.dispatchEvent(new CustomEvent(STATE_EVENT, { detail: { state } }));
}

/** The socket is open: the page follows the server's turn state. */
export function applyTurnState() {
  if (!session.open) return;
  setState(session.turn === "busy" ? "busy" : "ready");
}
