/*
 * #chat[data-state] (docs/ui-contract.md): connecting, ready, busy, offline, error. One place sets it, from two
 * inputs whose transitions are written down in lifecycle.js: the connection (connection.js) and the conversation's
 * turn (the server's data-item="turn-state", feed.js; "sent" between a send and the server's first word on it),
 * and whether a send waits in the outbox (outbox.js).
 * Whoever shows something by state listens to the STATE_EVENT on #chat.
 */
import { DATA, ID } from "./hooks.js";
import { connectionStep, pageState, turnStep } from "./lifecycle.js";

const chat = document.getElementById(ID.chat);
export const STATE_EVENT = "chat:state";

export const session = {
  /** The connection's state (lifecycle.js CONNECTION): connecting, syncing, live, waiting, given-up, closed. */
  connection: "connecting",
  /** The first socket has opened or failed: from then on a missing socket is "offline", not "connecting". */
  tried: false,
  /** The turn: "ready", "sent" (the page's guess) or "busy" (the server's word). */
  turn: (document.getElementById(ID.turnState) || { dataset: {} }).dataset[DATA.state] === "busy" ? "busy" : "ready",
  /** A send waits in the outbox (not sent yet, or sent on a socket that went): the page is not ready for another. */
  waiting: false,
  /** The socket is open (syncing or live): a frame sent now goes out. */
  get open() {
    return this.connection === "syncing" || this.connection === "live";
  },
  /** Open and caught up: what this tab has is what the server has. */
  get live() {
    return this.connection === "live";
  },
};

export function currentState() {
  return chat.dataset[DATA.state];
}

function setState(state) {
  const changed = chat.dataset[DATA.state] !== state;
  chat.dataset[DATA.state] = state;
  document.getElementById(ID.banner).hidden = !(state === "offline" || state === "error");
  if (state === "ready" && changed) {
    // Focus nowhere (the page just loaded, or what had it went away): the input takes it. Focus somewhere else (a
    // card's Add, the cart) stays there: moving it would pop a phone's keyboard up.
    const textarea = document.getElementById(ID.textarea);
    const active = document.activeElement;
    if (!active || active === document.body) textarea.focus({ preventScroll: true });
  }
  chat.dispatchEvent(new CustomEvent(STATE_EVENT, { detail: { state } }));
}

function refresh() {
  setState(pageState(session.connection, session.turn, session.tried, session.waiting));
}

/** A connection event (lifecycle.js CONNECTION); returns the new connection state. */
export function connectionEvent(event) {
  session.connection = connectionStep(session.connection, event);
  if (event !== "retry" && event !== "wake" && event !== "tryAgain") session.tried = true;
  refresh();
  return session.connection;
}

/** A turn event: "sent" (this tab sent), or the server's "busy" / "ready". */
export function turnEvent(event) {
  session.turn = turnStep(session.turn, event);
  refresh();
}

/** The outbox holds a send or not (outbox.js). */
export function outboxEvent(waiting) {
  if (session.waiting === waiting) return;
  session.waiting = waiting;
  refresh();
}
