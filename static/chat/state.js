/*
 * #chat[data-state] (shared/ui-contract.md): connecting, ready, busy, offline, error. One place sets it, from two
 * inputs: whether the socket is open (connection.js) and the conversation's turn state the server sends
 * (#turn-state, items/turn_state via feed.js).
 */
import { ID, SEL } from "./hooks.js";

const chat = document.getElementById(ID.chat);

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
  const textarea = document.getElementById(ID.textarea);
  const composer = document.getElementById(ID.composer);
  chat.dataset.state = state;
  const busy = state !== "ready";
  textarea.disabled = busy && state !== "offline";
  composer.querySelector(SEL.sendButton).disabled = busy && !(state === "offline" && !session.queuedWhileOffline);
  document.getElementById(ID.banner).hidden = !(state === "offline" || state === "error");
  if (state === "ready") {
    session.queuedWhileOffline = 0;
    const active = document.activeElement;
    if (!active || active === document.body || active === textarea) textarea.focus({ preventScroll: true });
  }
}

/** The socket is open: the page follows the server's turn state. */
export function applyTurnState() {
  if (!session.open) return;
  setState(session.turn === "busy" ? "busy" : "ready");
}
