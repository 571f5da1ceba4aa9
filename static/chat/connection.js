/*
 * The chat socket and catch-up. htmx's WebSocket extension owns the socket; this module gives it the VIZOCHOK
 * SDK's reconnect schedule (min(1000*2^n, 10000) ms, +/-25 % jitter, 30 tries), reconnects at once on `online`,
 * `visibilitychange` and `pageshow`, and asks for what this tab missed (a `sync` frame) on every open.
 */
import { emit } from "./bridges.js";
import { ATTR, CHAT_DATA } from "./hooks.js";
import { position } from "./feed.js";
import { applyTurnState, currentState, session, setState } from "./state.js";

const AUTO_RECONNECT_CODES = [1006, 1011, 1012, 1013];
const NO_RECONNECT_CODES = [4403];

let backoff = { initial: 1000, maximum: 10000, jitter: 0.25, attempts: 30 };
let socket = null; // htmx's socket wrapper (public interface)
let attempts = 0;
let retryTimer = null;

function delayFor(attempt) {
  const base = Math.min(backoff.initial * Math.pow(2, attempt), backoff.maximum);
  return base * (1 + backoff.jitter * (2 * Math.random() - 1));
}

function reconnectSoon(now) {
  if (session.open || !socket || retryTimer) return;
  if (attempts >= backoff.attempts && !now) {
    setState("error");
    return;
  }
  const wait = now ? 0 : delayFor(attempts);
  attempts += 1;
  retryTimer = setTimeout(() => {
    retryTimer = null;
    if (!session.open) socket.reconnect();
  }, wait);
}

function wakeUp() {
  if (!session.open && socket && currentState() !== "connecting") {
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    reconnectSoon(true);
  }
}

export function init(chat) {
  backoff = {
    initial: Number(chat.dataset[CHAT_DATA.backoffInitial]) || 1000,
    maximum: Number(chat.dataset[CHAT_DATA.backoffMax]) || 10000,
    jitter: Number(chat.dataset[CHAT_DATA.backoffJitter]) || 0.25,
    attempts: Number(chat.dataset[CHAT_DATA.backoffAttempts]) || 30,
  };

  // htmx reconnects by itself after 1006/1011/1012/1013; give it our schedule instead of its 64 s cap.
  htmx.config.wsReconnectDelay = (retryCount) => {
    attempts = retryCount + 1;
    if (retryCount >= backoff.attempts) {
      setState("error");
      return 2147483647; // give up; the banner's button reconnects by hand
    }
    return delayFor(retryCount);
  };

  chat.addEventListener("htmx:wsOpen", (evt) => {
    socket = evt.detail.socketWrapper;
    session.open = true;
    attempts = 0;
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    // Catch up first: anything stored while this tab was away comes back, then the turn state.
    socket.sendImmediately(JSON.stringify({ kind: "sync", after: position() }));
    applyTurnState();
    emit("connect", {});
  });

  chat.addEventListener("htmx:wsClose", (evt) => {
    socket = evt.detail.socketWrapper;
    const wasOpen = session.open;
    session.open = false;
    const code = evt.detail.event && evt.detail.event.code;
    if (NO_RECONNECT_CODES.includes(code)) {
      setState("error");
    } else {
      setState("offline");
      if (!AUTO_RECONNECT_CODES.includes(code)) reconnectSoon(false);
    }
    if (wasOpen) emit("disconnect", { code });
  });

  window.addEventListener("online", wakeUp);
  window.addEventListener("pageshow", (evt) => {
    if (evt.persisted) wakeUp();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") wakeUp();
  });
  document.addEventListener("click", (evt) => {
    if (evt.target.closest(`[${ATTR.reconnect}]`)) {
      attempts = 0;
      setState("offline");
      reconnectSoon(true);
    }
  });
}
