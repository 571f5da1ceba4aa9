/*
 * The chat socket: one at a time, the VIZOCHOK SDK's reconnect schedule, catch-up on every open, and a heartbeat of
 * the page's own. Its states and their transitions are written down in lifecycle.js (CONNECTION).
 *
 * The page owns its socket (htmx's WebSocket extension is not loaded: its own reconnect timer ran beside ours and
 * opened a second socket while one was still connecting). htmx still does what it is good at: swapping the server's
 * out-of-band fragments in (feed.js).
 *
 * Schedule (reference §12): after a close, retry n waits min(1000 * 2^n, 10000) ms +/- 25 % (n from 0), at most 30
 * retries, then the banner offers "Try again". Never after close codes 4001-4004 (the upstream's auth codes), 4403
 * (not this shopper's conversation) or 4429 (too many tabs). A wake-up (`online`, the page shown again, a page
 * restored from the back/forward cache) checks at once without using up a step; while a socket is connecting it
 * changes nothing.
 *
 * A network that vanishes silently (a tunnel, Wi-Fi gone, packets dropped) closes nothing: the socket looks open for
 * minutes. So while the page is visible it pings every data-heartbeat-interval ms ({"type":"ping","id":n}; the
 * server answers {"type":"pong"}), and a socket from which nothing at all came within data-heartbeat-timeout ms of
 * a ping is given up and replaced on the schedule. The `offline` event gives it up at once; `online`, the page shown
 * again and every send ping at once. A handshake that hangs (a blackholed network) is given up after interval +
 * timeout. The server's JSON frames ("pong", "stored") are told from its HTML fragments by their first character.
 */
import { emit } from "./bridges.js";
import { ATTR, CHAT_DATA, EARLY_SOCKET } from "./hooks.js";
import { Heartbeat, hasSocket } from "./lifecycle.js";
import { connectionEvent, session } from "./state.js";

let schedule = { initial: 1000, maximum: 10000, jitter: 0.25, attempts: 30, final: [4001, 4002, 4003, 4004] };
let beat = { interval: 4000, timeout: 4000 };
/** Closes after which the page never reconnects by itself: the upstream's auth codes, and the relay's own. */
const PAGE_FINAL_CODES = [4403, 4429];
/** The close code the page reports (vizochok:disconnect) for a socket it gave up itself: an abnormal closure. */
const GIVEN_UP = 1006;

let url = "";
let onFrame = () => {};
/** The catch-up request a (re)connect sends first: what this tab already has (feed.js, positions.js). */
let syncFrame = () => JSON.stringify({ kind: "sync", after: 0 });
/** Who hears the connection's news: open, lost, and the server's JSON frames by type. */
const listeners = { open: [], lost: [], stored: [] };
/** The one socket, connecting or open; null while waiting to retry. */
let socket = null;
let heart = null;
/** Steps of the schedule used since the last open. */
let retries = 0;
let timer = null;
let handshake = null;
let chatElement = null;

/** Retry n's wait in ms: min(initial * 2^n, maximum), +/- jitter; ``random`` is injectable for tests. */
export function retryDelay(n, random = Math.random) {
  const base = Math.min(schedule.initial * Math.pow(2, n), schedule.maximum);
  return base * (1 + schedule.jitter * (2 * random() - 1));
}

export function maxRetries() {
  return schedule.attempts;
}

/** ``fn`` runs on "open" (the socket opened), "lost" (it went) or "stored" (the server has a send key: fn(key)). */
export function on(event, fn) {
  listeners[event].push(fn);
}

function tell(event, ...args) {
  listeners[event].forEach((fn) => fn(...args));
}

/** The socket early.js opened while the page's scripts loaded (once, and only for this URL). */
function adoptEarly() {
  const early = window[EARLY_SOCKET];
  // Taken, whether or not early.js has run: an async early.js that runs after this (its file came later than the
  // modules) must not open a second socket beside this one.
  window[EARLY_SOCKET] = false;
  if (!early) return null;
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
  // A handshake that never ends (a network that drops packets without a word) is given up like a silent socket.
  handshake = setTimeout(() => {
    if (socket === ws && ws.readyState === WebSocket.CONNECTING) lose(ws, GIVEN_UP);
  }, beat.interval + beat.timeout);
  const opened = () => {
    if (socket !== ws) {
      ws.close(1000); // given up while it was connecting: the one in use is another
      return;
    }
    clearTimeout(handshake);
    retries = 0;
    connectionEvent("open");
    // Catch up first: anything stored while this tab was away comes back, then the turn state.
    ws.send(syncFrame());
    heart = new Heartbeat({
      interval: beat.interval,
      timeout: beat.timeout,
      active: () => document.visibilityState !== "hidden",
      ping: (id) => ws.send(JSON.stringify({ type: "ping", id })),
      dead: () => lose(ws, GIVEN_UP),
    });
    heart.start();
    emit("connect", {});
    tell("open");
  };
  const received = (evt) => {
    if (socket !== ws || typeof evt.data !== "string") return;
    if (heart) heart.heard();
    if (evt.data.charAt(0) === "{") control(evt.data);
    else onFrame(evt.data);
  };
  ws.addEventListener("open", opened);
  ws.addEventListener("message", received);
  ws.addEventListener("close", (evt) => lose(ws, evt.code));
  if (early && early.closeEvent) {
    lose(ws, early.closeEvent.code); // it closed before this script ran: as if it closed now (the code decides)
  } else if (early && ws.readyState === WebSocket.OPEN) {
    opened(); // it opened before this script ran: as if it opened now, then what the server sent meanwhile
    early.frames.forEach(received);
  }
}

/** The server's JSON frames: a heartbeat's answer (heard above), a send key it has stored before. */
function control(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return;
  }
  if (data.type === "stored" && typeof data.key === "string") tell("stored", data.key);
}

/** ``ws`` is gone: closed (``code``), silent past its deadline, or the device went offline. */
function lose(ws, code) {
  if (socket !== ws) return;
  socket = null;
  clearTimeout(handshake);
  if (heart) heart.stop();
  heart = null;
  const wasOpen = session.open;
  if (ws.readyState === WebSocket.OPEN) ws.close(1000); // a half-open socket: whatever it still holds is not ours
  if (schedule.final.includes(code) || PAGE_FINAL_CODES.includes(code)) {
    connectionEvent("final");
  } else {
    connectionEvent("lost");
    retryLater();
  }
  if (wasOpen) emit("disconnect", { code });
  tell("lost");
}

function clearTimer() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
  }
}

function retryLater() {
  if (retries >= schedule.attempts) {
    connectionEvent("gaveUp"); // the banner's button (or a wake-up) starts again
    return;
  }
  timer = setTimeout(() => {
    timer = null;
    // The device says it has no network: a try would fail at once (and log an error); `online` tries instead.
    if (navigator.onLine === false) return;
    retries += 1;
    connectionEvent("retry");
    connect();
  }, retryDelay(retries));
}

/**
 * The network or the page came back, or the shopper sends: an open socket is asked at once whether it still
 * carries frames; with none, one is opened now, without using up a step (unless closed for good).
 */
export function check() {
  if (socket) {
    if (heart) heart.check();
    return;
  }
  if (session.connection === "closed" || hasSocket(session.connection)) return;
  if (navigator.onLine === false) return; // no network at all: `online` will come
  if (timer === null) retries = 0; // had given up: a fresh schedule
  clearTimer();
  connectionEvent("wake");
  connect();
}

/** The device says it is offline: no socket works now, so none is trusted; the banner says why. */
function offline() {
  chatElement.setAttribute(ATTR.noNetwork, "");
  if (socket) lose(socket, GIVEN_UP);
}

function online() {
  chatElement.removeAttribute(ATTR.noNetwork);
  check();
}

/** The shopper's "Try again". */
function tryAgain() {
  if (socket) return;
  clearTimer();
  retries = 0;
  connectionEvent("tryAgain");
  connect();
}

/** Sends a frame if the socket is open now; returns whether it went. The caller keeps what did not (outbox.js). */
export function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN || !session.open) return false;
  socket.send(frame);
  return true;
}

/** Sends a frame only if the socket is open now (a stop means nothing later); returns whether it went. */
export function sendNow(frame) {
  return send(frame);
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
  beat = {
    interval: Number(data[CHAT_DATA.heartbeatInterval]) || beat.interval,
    timeout: Number(data[CHAT_DATA.heartbeatTimeout]) || beat.timeout,
  };
  url = new URL(chat.getAttribute(ATTR.socketUrl), window.location.href).href.replace(/^http/, "ws");
  onFrame = frame;
  syncFrame = sync;

  chatElement = chat;
  if (navigator.onLine === false) chat.setAttribute(ATTR.noNetwork, "");
  window.addEventListener("online", online);
  window.addEventListener("offline", offline);
  window.addEventListener("pageshow", (evt) => {
    if (evt.persisted) check();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") check();
  });
  document.addEventListener("click", (evt) => {
    if (evt.target.closest(`[${ATTR.reconnect}]`)) tryAgain();
  });
  connect();
}
