/*
 * The outbox: every send (a message, a card's Add, a quick reply, a checklist, a cart line) is kept, in order, in
 * the page's storage (localStorage, per conversation) until the server has stored it, so nothing the shopper sent
 * is lost to a dead network, a reload or an app kill. The bookkeeping is lifecycle.js's Outbox and Pending; this
 * module shows it and moves it.
 *
 * A send made while the socket is open goes at once and shows nothing more (the server's bubble comes in a moment).
 * One made while it is not, or one whose socket went before the server showed it, is shown at once as a pending
 * bubble (.msg[data-outbox], with button[data-action=discard]) and goes when the socket is back and caught up: one
 * at a time, each when the turn before it is over, with its own idempotency key, so the server stores it once
 * whatever was resent. The bubble goes when the server's own bubble with its key comes (data-key), or the server
 * says it had that key already ("stored"). A refused entry is shown as the refusal, and its words go back to the
 * composer.
 */
import * as cards from "./cards.js";
import * as composer from "./composer.js";
import * as connection from "./connection.js";
import { ACTION, ATTR, CLASS, DATA, ID, SEL } from "./hooks.js";
import { Outbox, Pending } from "./lifecycle.js";
import { outboxEvent, session, turnEvent } from "./state.js";
import { t } from "./texts.js";
import * as times from "./times.js";

const log = document.getElementById(ID.log);
let box = new Outbox(null, "");
export const pending = new Pending();
let requestSync = () => {};
/** Scrolls the log to its newest message (feed.js): a new pending bubble is what the shopper just sent. */
let reveal = () => {};
/** A refusal asked to wait ("rate_limited"): nothing goes before this moment (ms). */
let holdUntil = 0;
let holdTimer = null;

function storage() {
  try {
    return window.localStorage; // throws in some sandboxed frames and with storage blocked
  } catch {
    return null;
  }
}

/** Whether a send waits tells the page's state (state.js): busy while one does, so nothing else goes first. */
function changed() {
  outboxEvent(box.entries.length > 0);
}

function bubbleOf(key) {
  return log.querySelector(`${SEL.outbox}[${ATTR.key}="${CSS.escape(key)}"]`);
}

/** The pending bubble of ``entry``, made if missing; last in the log, after everything the server sent. */
function show(entry) {
  let bubble = bubbleOf(entry.key);
  const made = !bubble;
  if (made) {
    bubble = document.createElement("article");
    bubble.className = `${CLASS.message} ${CLASS.outbox}`;
    bubble.dataset[DATA.role] = "user";
    bubble.setAttribute(ATTR.outbox, "");
    bubble.setAttribute(ATTR.key, entry.key);
    const text = document.createElement("div");
    text.className = CLASS.messageText;
    text.textContent = entry.label;
    const meta = document.createElement("div");
    meta.className = CLASS.messageMeta;
    const status = document.createElement("span");
    status.className = CLASS.outboxStatus;
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = `${CLASS.linkButton} ${CLASS.outboxDiscard}`;
    discard.dataset[DATA.action] = ACTION.discard;
    discard.textContent = t("outbox-discard");
    const time = document.createElement("time");
    time.className = CLASS.messageTime;
    time.setAttribute("datetime", new Date(entry.at || Date.now()).toISOString());
    meta.append(status, discard, time);
    bubble.append(text, meta);
  }
  bubble.querySelector(`.${CLASS.outboxStatus}`).textContent = t(entry.sent ? "outbox-sending" : "outbox-waiting");
  bubble.querySelector(SEL.discard).hidden = entry.sent; // on its way: the server may have it already
  if (made) {
    log.append(bubble);
    times.write(bubble);
    reveal();
  }
  return bubble;
}

/** Pending bubbles stay last: what the server sends meanwhile goes above them (feed.js calls this per frame). */
export function keepLast() {
  log.querySelectorAll(SEL.outbox).forEach((bubble) => {
    if (bubble.nextElementSibling) log.append(bubble);
  });
}

function ended(keys, message) {
  keys.forEach((key) => cards.clearPending(key, message));
}

/**
 * A send: ``entry`` {key, frame, label, text, sku}. Goes now when the socket is open and caught up, nothing else
 * waits and no turn runs; else waits, shown. Always kept: a storage that refuses it leaves it in the page.
 * Caught up, not only open: the catch-up's turn state answers the sync sent before this, so its "ready" would end
 * this send's "sent" while its turn runs (the page showed ready mid-reply). It goes when the catch-up is in.
 */
export function submit(entry) {
  const waiting = box.size > 0;
  const added = box.add(entry);
  if (entry.sku) pending.add(entry.key, entry.sku);
  connection.check(); // a send is a moment to ask whether the socket still carries frames
  const sent = !waiting && session.live && session.turn === "ready" && Date.now() >= holdUntil && go(added);
  changed();
  if (!sent) show(added);
}

function go(entry) {
  if (!connection.send(entry.frame)) return false;
  box.markSent(entry.key);
  turnEvent("sent");
  if (bubbleOf(entry.key)) show(entry);
  return true;
}

/** Send the next entry if the socket is open and caught up and no turn runs (turn over, caught up, stored). */
export function flush() {
  if (!session.live || session.turn !== "ready") return;
  const wait = holdUntil - Date.now();
  if (wait > 0) {
    if (holdTimer === null) holdTimer = setTimeout(() => ((holdTimer = null), flush()), wait);
    return;
  }
  const next = box.next();
  if (next) go(next);
}

/** The server stored ``key``: its bubble (``shown``) is in the log, or it said so ("stored"). */
export function stored(key, shown) {
  const entry = box.stored(key);
  changed();
  pending.stored(key);
  const bubble = bubbleOf(key);
  if (bubble) bubble.remove();
  if (entry && !shown) requestSync(); // stored before, by a socket that went: the catch-up brings its bubble
}

/**
 * A refusal (fragments/error.html, this tab only): the entry on its way is done, or waits (another tab's turn).
 * ``told``: the refusal is already shown where the shopper acted (a cart line), so the owner gets no second word.
 */
export function refused(node, told = false) {
  const code = node.getAttribute(ATTR.code) || "";
  const retryAfter = Number(node.getAttribute(ATTR.retryAfter)) || 0;
  const inFlight = box.inFlight();
  if (code === "rate_limited" && inFlight) {
    inFlight.sent = false;
    holdUntil = Date.now() + retryAfter * 1000;
    show(inFlight);
    return;
  }
  const done = box.refused(code);
  changed();
  if (done) ended(pending.discard(done.key), told ? null : (node.textContent || "").trim());
  if (!done) {
    if (inFlight) show(inFlight); // waits for the running turn to end
    return;
  }
  const bubble = bubbleOf(done.key);
  if (bubble) bubble.remove();
  if (done.text) composer.giveBack(done.text);
}

/** The turn is over: every pending add whose turn ran ends, and the next entry may go. */
export function turnOver() {
  ended(pending.turnEnded(), null);
  flush();
}

/** An error, a stop or a cart change ended every pending add that was sent (a queued one has its turn to come). */
export function endAll(message) {
  ended(
    pending.endAll((key) => Boolean(box.get(key) && !box.get(key).sent)),
    message,
  );
}

function lost() {
  // Sent on a socket that went: the server may or may not have it. Shown, and sent again (same key) when back.
  box.lost().forEach(show);
}

function discard(button) {
  const bubble = button.closest(SEL.outbox);
  const key = bubble.getAttribute(ATTR.key);
  const entry = box.get(key);
  if (entry && entry.sent) return;
  box.discard(key);
  changed();
  ended(pending.discard(key), null);
  bubble.remove();
  composer.focus();
}

/** The keys the server has shown in ``root``: entries stored while this tab was away or before a reload. */
export function storedIn(root) {
  root.querySelectorAll(`${SEL.message}[${ATTR.key}]:not([${ATTR.outbox}])`).forEach((node) => {
    if (box.get(node.getAttribute(ATTR.key))) stored(node.getAttribute(ATTR.key), true);
  });
}

export function init(conversation, { sync, toBottom }) {
  requestSync = sync;
  reveal = toBottom;
  box = new Outbox(storage(), `vizochok:outbox:${conversation}`);
  storedIn(log); // stored before the reload: the page already shows them
  box.entries.forEach(show);
  changed();
  connection.on("lost", lost);
  connection.on("stored", (key) => stored(key, false));
  document.addEventListener("click", (evt) => {
    const button = evt.target.closest(SEL.discard);
    if (button && button.closest(SEL.outbox)) discard(button);
  });
}
