/*
 * What the server sends: htmx swaps each frame's out-of-band fragments in, and every node a frame inserted is handed
 * to `received`, which reacts by the node's data-item (hooks.js), never by sniffing ids or classes.
 *
 * Positions: stored items carry data-seq; the highest one seen is what a (re)connect asks the server to continue
 * after. One element per log item: a catch-up that overlaps a live fragment, or a final reply replacing the streamed
 * bubble, lands in the place of the element it duplicates.
 */
import * as announcer from "./announcer.js";
import { emit } from "./bridges.js";
import * as cards from "./cards.js";
import * as cart from "./cart.js";
import * as feedback from "./feedback.js";
import { ATTR, CHAT_DATA, DATA, ID, ITEM, SEL } from "./hooks.js";
import * as controls from "./log-controls.js";
import * as outbox from "./outbox.js";
import * as positions from "./positions.js";
import { connectionEvent, session, turnEvent } from "./state.js";
import * as times from "./times.js";

const chat = document.getElementById(ID.chat);
const log = document.getElementById(ID.log);

let lastSeq = Number(chat.dataset[CHAT_DATA.lastSeq]) || 0;

/** The last stored item this tab has: a catch-up continues after it. */
export function position() {
  return lastSeq;
}

// Follow new content while the shopper is at the bottom; leave them be while they read further up. Scrolling here is
// instant: a smooth scroll in flight fires scroll events that would read as "the shopper scrolled away".
let stick = true;

function nearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
}

export function toBottom() {
  log.scrollTo({ top: log.scrollHeight, behavior: "instant" });
  stick = true;
  controls.atBottom();
}

/** The shopper sent something: follow the conversation again. */
export function follow() {
  stick = true;
  controls.atBottom();
}

function place(node) {
  const replaces = node.getAttribute(ATTR.replaces);
  if (replaces) {
    const live = document.getElementById(replaces);
    if (live) live.replaceWith(node);
  }
  if (node.id && (node.hasAttribute(ATTR.seq) || node.getAttribute(ATTR.item) === ITEM.streaming)) {
    document.querySelectorAll(`[id="${CSS.escape(node.id)}"]`).forEach((twin) => {
      if (twin !== node) twin.replaceWith(node);
    });
  }
  inOrder(node);
}

/**
 * Stored items stay in seq order, before the bubble being streamed. A tab that reconnects mid-reply may be handed a
 * live piece (a new bubble, the block before it) before its catch-up brings what it missed while away; appended as
 * they come, the missed items would land after newer ones until a reload.
 */
function inOrder(node) {
  const seq = Number(node.getAttribute(ATTR.seq));
  if (!seq || node.parentElement !== log) return;
  const items = Array.from(log.children);
  const at = items.indexOf(node);
  const next = items.find((other) => other !== node && (Number(other.getAttribute(ATTR.seq)) > seq || other.matches(SEL.streaming)));
  if (next && items.indexOf(next) < at) next.before(node);
  else if (!next && items.slice(at + 1).some((other) => Number(other.getAttribute(ATTR.seq)) > 0)) log.append(node);
}

const HANDLERS = {
  [ITEM.turnState](node) {
    positions.caughtUp();
    // The catch-up of a (re)connect ends with the turn state: from here on the tab has what the server has.
    if (session.open && !session.live) connectionEvent("caughtUp");
    const ready = node.dataset[DATA.state] !== "busy";
    if (ready) {
      delete chat.dataset[CHAT_DATA.queuePosition]; // a turn that ended in line (stopped, timed out) left it
      // A bubble still streaming when the turn is over lost its end while this tab was away; the stored reply came
      // back with the catch-up.
      log.querySelectorAll(SEL.streaming).forEach((stale) => stale.remove());
    }
    turnEvent(ready ? "ready" : "busy");
    if (ready) outbox.turnOver(); // whatever ended the turn ends its pending adds; the outbox's next may go
  },
  [ITEM.queueState](node) {
    // #chat[data-queue-position] (the UI contract, docs/ui-contract.md): the place while this conversation's turn waits, absent otherwise.
    const place = node.dataset[DATA.position];
    if (place) chat.dataset[CHAT_DATA.queuePosition] = place;
    else delete chat.dataset[CHAT_DATA.queuePosition];
  },
  [ITEM.cart](node) {
    if (!node.hasAttribute(ATTR.change)) return;
    outbox.endAll(null);
    cart.changed(node);
  },
  [ITEM.user](node) {
    if (node.hasAttribute(ATTR.key)) outbox.stored(node.getAttribute(ATTR.key), true);
    controls.begun();
  },
  [ITEM.refusal](node) {
    // A cart line's send is told at its line in the panel, not in the log behind it; either way the outbox's entry
    // on its way is over (else nothing after it would go).
    // The outbox first: ending the entry's pending mark redraws the line's quantity, and the refusal is told after.
    const atLine = Boolean(cart.lineFor(node));
    outbox.refused(node, atLine);
    if (!atLine || !cart.refused(node)) cards.unlockChoices(log);
    emit("error", { code: node.getAttribute(ATTR.code) });
  },
  [ITEM.error](node) {
    outbox.endAll((node.querySelector(SEL.errorText) || node).textContent.trim());
    emit("error", { code: node.getAttribute(ATTR.code) });
    // role=alert announces itself on insertion; repeating it in the polite announcer would read it twice.
  },
  [ITEM.assistant](node) {
    // A reply back for its rating (feedback.js) says the rating, in the tab that rated it; it is no new reply.
    if (feedback.isUpdate(node)) {
      feedback.updated(node);
      return;
    }
    // Spoken when the turn is over: once per reply, never per token; the words only, not the time or the buttons.
    announcer.replyFinished((node.querySelector(SEL.messageText) || node).textContent);
  },
  [ITEM.stopped]() {
    outbox.endAll(null);
  },
  [ITEM.cards](node) {
    cards.watchImages(node);
  },
};

/** Nodes one server frame inserted, in document order. */
export function received(nodes) {
  let messages = false;
  let news = false;
  for (const node of nodes) {
    if (node.nodeType !== 1 || !node.isConnected) continue;
    place(node);
    if (node.matches(SEL.message)) {
      times.write(node); // a stored message, or the reply being written (its time until the stored one comes)
      if (node.hasAttribute(ATTR.seq)) messages = true;
    }
    if (node.closest(`#${ID.log}`) && !feedback.isUpdate(node)) news = true; // a rating changed: nothing new
    const seq = Number(node.getAttribute(ATTR.seq));
    if (seq > lastSeq) lastSeq = seq;
    const handler = HANDLERS[node.getAttribute(ATTR.item)];
    if (handler) handler(node);
  }
  outbox.keepLast();
  if (messages) times.separateDays();
  if (session.turn === "ready") announcer.turnOver();
  if (stick) toBottom();
  else if (news) controls.newBelow();
}

/**
 * Streamed pieces whose bubble this tab lacks (reloaded mid-reply, the page came before the bubble did) are taken
 * out before htmx looks for their targets: htmx logs a missing target as a console error (htmx:oobErrorNoTarget).
 * A bubble the same frame starts counts as there. Returns the frame to swap and whether something was taken out.
 */
function withoutOrphans(html) {
  if (html.indexOf(`${ATTR.bubble}="`) < 0) return [html, false];
  const named = new Set(Array.from(html.matchAll(/data-bubble="([^"]*)"/g), (match) => match[1]));
  const missing = [...named].filter((id) => !document.getElementById(id) && html.indexOf(`id="${id}"`) < 0);
  if (!missing.length) return [html, false];
  const template = document.createElement("template");
  template.innerHTML = html;
  template.content.querySelectorAll(`[${ATTR.bubble}][hx-swap-oob]`).forEach((piece) => {
    if (missing.includes(piece.getAttribute(ATTR.bubble))) piece.remove();
  });
  return [template.innerHTML, true];
}

/**
 * One frame from the socket: htmx swaps its out-of-band elements in; what each swap inserts is collected on the way
 * (htmx:oobBeforeSwap names the nodes) and handled once the whole frame is in, so handlers see a consistent page.
 */
export function frame(html) {
  const inserted = [];
  // A streamed piece that would leave a gap, or whose bubble this tab lacks (it joined mid-reply, or reconnected to
  // another process): not shown; a catch-up brings the bubble whole (positions.js).
  let gap;
  [html, gap] = withoutOrphans(html);
  const collect = (evt) => {
    if (!positions.guard(evt)) gap = true;
    inserted.push(...Array.from(evt.detail.fragment.children || []));
  };
  const missing = (evt) => {
    const content = evt.detail.content;
    if (content && content.getAttribute && content.getAttribute(ATTR.fallback) === "bubble") gap = true;
  };
  document.addEventListener("htmx:oobBeforeSwap", collect);
  document.addEventListener("htmx:oobErrorNoTarget", missing);
  try {
    htmx.swap(chat, html, { swapStyle: "none", swapDelay: 0, settleDelay: 0, transition: false });
  } finally {
    document.removeEventListener("htmx:oobBeforeSwap", collect);
    document.removeEventListener("htmx:oobErrorNoTarget", missing);
  }
  received(inserted);
  if (gap) positions.requestSync(lastSeq);
}

/** The sync frame of a (re)connect: what this tab has (positions.js); the catch-up ends with the turn state. */
export function syncFrame() {
  positions.syncStarted();
  return positions.syncFrame(lastSeq);
}

export function init() {
  log.addEventListener("scroll", () => {
    stick = nearBottom();
    if (stick) controls.atBottom();
  }, { passive: true });
  controls.init(toBottom);
  times.init();
  toBottom();
}
