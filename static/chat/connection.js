/*
 * The chat socket: one at a time, the VIZOCHOK SDK's reconnect schedule, catch-up on every open.
 *
 * The page owns its socket (htmx's WebSocket extension is not loaded: its own reconnect timer ran beside ours and
 * opened a second socket while one was still connecting). htmx still does what it is good at: swapping the server's
 * out-of-band fragments in (feed.js).
 *
 * Schedule (reference §12): after a close, retry n waits min(1000 * 2^n, 10000) ms +/- 25 % (n from 0), at most 30
 * retries, then the banner offers "Try again". Never after close codes 4001-4004 (the upstream's auth codes), 4403
 * (not this shopper's conversation) or 4429 (too many tabs). A wake-up (`online`, the page shown again, a page
 * restored from the back/forward cache) tries at once without using up a step; while a socket is connecting it
 * changes nothing. Nothing is sent on a socket that is not open: a send made while offline waits (one at most) and
 * goes after the catch-up request.
 */
import { emit } from "./bridges.js";
import { ATTR, CHAT_DATA, EARLY_SOCKET } from "./hooks.js";
import { applyTurnState, session, setState } from "./state.js";

let schedule = { initial: 1000, maximum: 10000, jitter: 0.25, attempts: 30, final: [4001, 4002, 4003, 4004] };
/** Closes after which the page never reconnects by itself: the upstream's auth codes, and the relay's own. */
const PAGE_FINAL_CODES = [4403, 4429];

let url = "";
let onFrame = () => {};
/** The catch-up request a (re)connect sends first: what this tab already has (feed.js, positions.js). */
let syncFrame = () => JSON.stringify({ kind: "sync", after: 0 });
/** The one socket, connecting or open; null while waiting to retry. */
let socket = null;
/** Steps of the schedule used since the last open. */
let retries = 0;
let timer = null;
/** Closed for good (an auth close): only the shopper's "Try again" or a reload reconnects. */
let final = false;
/** A frame sent while offline, to go once the socket is open and caught up. */
let waiting = null;

/** Retry n's wait in ms: min(initial * 2^n, maximum), +/- jitter; ``random`` is injectable for tests. */
export function retryDelay(n, random = Math.random) {
  const base = Math.min(schedule.initial * Math.pow(2, n), schedule.maximum);
  return base * (1 + schedule.jitter * (2 * random() - 1));
}

export function maxRetries() {
  return schedule.attempts;
}

/** The socket early.js opened while the page's scripts loaded (once, and only for this URL). */
function adoptEarly() {
  const early = window[EARLY_SOCKET];
  if (!early) return null;
  delete window[EARLY_SOCKET];
  const frames = early.take();
  if (early.url === url) return { ws: early.ws, frames, closeEvent: early.closeEvent };
  early.ws.close();
  return null;
}

function connect() {
  if (socket) return; // one socket at a time: a connecting one is left to finish
  clearTimer();
  const early = adoptEarly();
  const ws = early ? early.ws : new WebSocket(url);
  socket = ws;
  const opened = () => {
    if (socket !== ws) return;
    retries = 0;
    session.open = true;
    // Catch up first: anything stored while this tab was away comes back, then the turn state.
    ws.send(syncFrame());
    if (waiting) {
      ws.send(waiting);
      waiting = null;
    }
    applyTurnState();
    emit("connect", {});
  };
  ws.addEventListener("open", opened);
  ws.addEventListener("message", (evt) => {
    if (socket === ws && typeof evt.data === "string") onFrame(evt.data);
  });
  const closed = (evt) => {
    if (socket !== ws) return;
    socket = null;
    const wasOpen = session.open;
    session.open = false;
    if (schedule.final.includes(evt.code) || PAGE_FINAL_CODES.includes(evt.code)) {
      final = true;
      setState("error");
    } else {
      setState("offline");
      retryLater();
    }
    if (wasOpen) emit("disconnect", { code: evt.code });
  };
  ws.addEventListener("close", closed);
  if (early && early.closeEvent) {
    closed(early.closeEvent); // it closed before this script ran: as if it closed now (the code decides what next)
  } else if (early && ws.readyState === WebSocket.OPEN) {
    opened(); // it opened before this script ran: as if it opened now, then what the server sent meanwhile
    early.frames.forEach((evt) => typeof evt.data === "string" && onFrame(evt.data));
  }
}

function clearTimer() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
  }
}

function retryLater() {
  if (retries >= schedule.attempts) {
    setState("error"); // gave up; the banner's button (or a wake-up) starts again
    return;
  }
  timer = setTimeout(() => {
    timer = null;
    retries += 1;
    connect();
  }, retryDelay(retries));
}

/** The network or the page came back: try now, unless a socket is already connecting or open. */
function wakeUp() {
  if (socket || final) return;
  if (timer === null) retries = 0; // had given up: a fresh schedule
  connect();
}

/** The shopper's "Try again". */
function tryAgain() {
  if (socket) return;
  final = false;
  retries = 0;
  setState("offline");
  connect();
}

/**
 * Sends a frame now if the socket is open, else keeps it for the next open (one frame at most: a second send made
 * while offline replaces nothing and is refused). Returns "sent", "waiting" or "" (refused).
 */
export function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN && session.open) {
    socket.send(frame);
    return "sent";
  }
  if (waiting || final) return "";
  waiting = frame;
  return "waiting";
}

/** Sends a frame only if the socket is open now (a stop means nothing later); returns whether it went. */
export function sendNow(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN || !session.open) return false;
  socket.send(frame);
  return true;
}

export function hasWaiting() {
  return waiting !== null;
}

export function init(chat, { frame, sync }) {
  const data = chat.dataset;
  schedule = {
    initial: Number(data[CHAT_DATA.backoffInitial]) || schedule.initial,
    maximum: Number(data[CHAT_DATA.backoffMax]) || schedule.maximum,
    jitter: Number(data[CHAT_DATA.backoffJitter]) || schedule.jitter,
    attempts: Number(data[CHAT_DATA.backoffAttempts]) || schedule.attempts,
    final: (data[CHAT_DATA.noReconnectCodes] || "").split(/\s+/).filter(Boolean).map(Number),
  };
  if (!schedule.final.length) schedule.final = [4001, 4002, 4003, 4004];
  url = new URL(chat.getAttribute(ATTR.socketUrl), window.location.href).href.replace(/^http/, "ws");
  onFrame = frame;
  syncFrame = sync;

  window.addEventListener("online", wakeUp);
  window.addEventListener("pageshow", (evt) => {
    if (evt.persisted) wakeUp();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") wakeUp();
  });
  document.addEventListener("click", (evt) => {
    if (evt.target.closest(`[${ATTR.reconnect}]`)) tryAgain();
  });
  connect();
}
