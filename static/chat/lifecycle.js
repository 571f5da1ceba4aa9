/*
 * Every pending state of the page in one place: who owns it, what moves it, and what ends it. Plain data and pure
 * transitions, no DOM, so each is unit-tested under Node (tests/js/lifecycle.test.mjs); the modules that touch the
 * page (connection.js, sending.js, feed.js, state.js) only feed events in and show what comes out.
 *
 * Connection (owner: connection.js)
 *   connecting --open--> syncing --caughtUp--> live          the socket is open; live once the catch-up is in
 *   connecting|syncing|live --lost--> waiting               a close, a missed heartbeat, the `offline` event
 *   connecting|syncing|live --final--> closed               close codes 4001-4004, 4403, 4429: never retried
 *   waiting --retry|wake--> connecting                      the schedule's next step, or the network/page is back
 *   waiting --gaveUp--> given-up                            30 steps used
 *   given-up --wake|tryAgain--> connecting                  a fresh schedule
 *   closed --tryAgain--> connecting                         only the shopper's "Try again" (or a reload)
 *
 * Turn (owner: the server's turn state; the page only anticipates it)
 *   ready --sent--> sent --busy--> busy --ready--> ready    any turn-state frame ends "sent": the server has spoken
 *
 * Outbox entry (owner: Outbox; one per send, by its idempotency key)
 *   queued --flush--> sent --stored--> (gone)              the server showed the shopper's bubble with this key,
 *                                                          or acknowledged the key as stored before
 *   sent --lost--> queued                                   the socket went before the server answered: resent
 *                                                          with the same key (the server stores a key once)
 *   sent --refused--> (gone)                                the refusal is shown; the words go back to the composer
 *   sent --busy--> queued                                   another tab's turn runs: sent again when it ends
 *   queued --discard--> (gone)                              the shopper's button
 *
 * Pending add (a card's Add, a cart panel line's action; owner: Pending, by send key)
 *   waiting --stored--> running --turnEnded--> (gone)       whatever ends the turn: text, an error, a stop, a drop,
 *                                                          a timeout (the server's turn state turns ready)
 *   waiting --refused--> (gone)                             its send was refused (outbox.js: by key)
 *   waiting|running --error|stopped|cartChanged--> (gone)      unless still queued in the outbox (not sent yet)
 *   waiting|running --discard--> (gone)
 *   a reload starts with none: nothing pending survives the page.
 */

/** Connection states and the events each accepts; an event a state does not list changes nothing. */
export const CONNECTION = Object.freeze({
  connecting: { open: "syncing", lost: "waiting", final: "closed" },
  syncing: { caughtUp: "live", lost: "waiting", final: "closed" },
  live: { caughtUp: "live", lost: "waiting", final: "closed" },
  waiting: { retry: "connecting", wake: "connecting", gaveUp: "given-up", tryAgain: "connecting" },
  "given-up": { wake: "connecting", tryAgain: "connecting" },
  closed: { tryAgain: "connecting" },
});

export function connectionStep(state, event) {
  const next = (CONNECTION[state] || {})[event];
  return next || state;
}

/** Whether a socket exists in this connection state (one at a time). */
export function hasSocket(state) {
  return state === "connecting" || state === "syncing" || state === "live";
}

/** Turn states: "sent" is the page's own guess between a send and the server's first word on it. */
export const TURN = Object.freeze({
  ready: { sent: "sent", busy: "busy", ready: "ready" },
  sent: { busy: "busy", ready: "ready" },
  busy: { busy: "busy", ready: "ready" },
});

export function turnStep(state, event) {
  const next = (TURN[state] || {})[event];
  return next || state;
}

/**
 * #chat[data-state] (the UI contract) from the connection, the turn and the outbox: "connecting" until the first
 * socket has opened or failed, "offline" while reconnecting, "error" when given up, else "busy" while a turn runs
 * or a send waits in the outbox (it goes when the catch-up is in, a hold ends or another tab's turn is over: one
 * turn at a time, so nothing else may go first), "ready" otherwise.
 */
export function pageState(connection, turn, everConnected, waiting = false) {
  if (connection === "closed" || connection === "given-up") return "error";
  if (connection === "connecting" || connection === "waiting") return everConnected ? "offline" : "connecting";
  return turn === "ready" && !waiting ? "ready" : "busy";
}

/** Refusals after which an outbox entry is sent again later rather than given back (a turn of another tab runs). */
export const REQUEUE_CODES = Object.freeze(["agent_busy"]);

/**
 * What the shopper sent and the server has not stored yet, in order, kept in ``storage`` (localStorage) so a reload
 * or an app kill loses nothing: each entry in an item of its own, ``name`` + ":" + its key, so two tabs of one
 * conversation never overwrite each other's. An entry: {key, frame (the JSON sent), label (the bubble's words),
 * text (the composer's words, "" for an action), sku, at (ms, strictly increasing: the order), sent (on the current
 * socket; never stored)}.
 */
export class Outbox {
  constructor(storage, name) {
    this.storage = storage;
    this.name = name;
    this.entries = [];
    this.last = 0;
    this.load();
  }

  itemName(key) {
    return `${this.name}:${key}`;
  }

  load() {
    this.entries = [];
    if (!this.storage) return;
    const prefix = `${this.name}:`;
    try {
      for (let n = 0; n < this.storage.length; n++) {
        const item = this.storage.key(n);
        if (!item || !item.startsWith(prefix)) continue;
        let entry = null;
        try {
          entry = JSON.parse(this.storage.getItem(item));
        } catch {
          entry = null; // unreadable (another version, a torn write): nothing to restore
        }
        if (entry && typeof entry.key === "string" && typeof entry.frame === "string" && item === prefix + entry.key) {
          // Nothing is on a socket after a reload: whatever was sent may go again, with its key.
          this.entries.push({ text: "", sku: "", label: "", ...entry, at: Number(entry.at) || 0, sent: false });
        }
      }
    } catch {
      // Storage forbidden (a sandboxed frame): nothing to restore.
    }
    this.entries.sort((a, b) => a.at - b.at);
    this.last = this.entries.reduce((latest, entry) => Math.max(latest, entry.at), 0);
  }

  write(entry) {
    if (!this.storage) return;
    const kept = { ...entry }; // what is on a socket now means nothing after a reload
    delete kept.sent;
    try {
      this.storage.setItem(this.itemName(entry.key), JSON.stringify(kept));
    } catch {
      // Storage full or forbidden (a private window): the page still holds the entry until it is closed.
    }
  }

  erase(key) {
    if (!this.storage) return;
    try {
      this.storage.removeItem(this.itemName(key));
    } catch {
      // Forbidden: nothing was written either.
    }
  }

  add(entry) {
    this.last = Math.max(Date.now(), this.last + 1);
    const added = { text: "", sku: "", ...entry, at: this.last, sent: false };
    this.entries.push(added);
    this.write(added);
    return added;
  }

  get(key) {
    return this.entries.find((entry) => entry.key === key) || null;
  }

  /** The entry on its way, if any: one at a time, so they arrive in order and never start two turns. */
  inFlight() {
    return this.entries.find((entry) => entry.sent) || null;
  }

  /** The next entry to send, when none is on its way. */
  next() {
    if (this.inFlight()) return null;
    return this.entries[0] || null;
  }

  markSent(key) {
    const entry = this.get(key);
    if (entry) entry.sent = true;
    return entry;
  }

  /** The server has it (its bubble came, or it acknowledged the key): the entry is done. */
  stored(key) {
    return this.remove(key);
  }

  /** The socket went: an entry on its way may or may not have arrived; it goes again with the same key. */
  lost() {
    const back = this.entries.filter((entry) => entry.sent);
    back.forEach((entry) => (entry.sent = false));
    return back;
  }

  /**
   * The server refused the entry on its way: it is done (the refusal is shown), unless the refusal only says to
   * wait (``REQUEUE_CODES``). Returns the entry that ended, or null.
   */
  refused(code) {
    const entry = this.inFlight();
    if (!entry) return null;
    if (REQUEUE_CODES.includes(code)) {
      entry.sent = false;
      return null;
    }
    return this.remove(entry.key);
  }

  discard(key) {
    return this.remove(key);
  }

  remove(key) {
    const entry = this.get(key);
    if (!entry) return null;
    this.entries = this.entries.filter((other) => other !== entry);
    this.erase(key);
    return entry;
  }

  get size() {
    return this.entries.length;
  }
}

/** Pending adds by send key: {target (a card's sku, a cart line's), running (its turn has begun)}. */
export class Pending {
  constructor() {
    this.adds = new Map();
  }

  add(key, target) {
    this.adds.set(key, { target, running: false });
  }

  has(key) {
    return this.adds.has(key);
  }

  /** The server stored the send: its turn runs now, and its end ends the add. */
  stored(key) {
    const add = this.adds.get(key);
    if (add) add.running = true;
  }

  /** The turn is over: every add whose turn ran ends. Returns the keys that ended. */
  turnEnded() {
    return this.end((add) => add.running);
  }

  /** An error, a stop, a cart change: every add ends, but those still waiting to be sent (``waiting(key)``). */
  endAll(waiting = () => false) {
    return this.end((add, key) => !waiting(key));
  }

  discard(key) {
    return this.adds.delete(key) ? [key] : [];
  }

  end(which) {
    const ended = [];
    for (const [key, add] of this.adds) {
      if (which(add, key)) {
        this.adds.delete(key);
        ended.push(key);
      }
    }
    return ended;
  }

  get size() {
    return this.adds.size;
  }
}

/**
 * The page's own heartbeat on its socket: a ping every ``interval`` ms while ``active()`` (the page is visible), and
 * ``dead()`` when nothing at all came back within ``timeout`` ms of one. Any frame heard counts as an answer.
 * ``check()`` pings at once (the network came back, the page was shown again, the shopper sends). Timers are
 * injectable for tests.
 */
export class Heartbeat {
  constructor({ interval, timeout, ping, dead, active = () => true, timers = globalThis }) {
    this.interval = interval;
    this.timeout = timeout;
    this.ping = ping;
    this.dead = dead;
    this.active = active;
    this.timers = timers;
    this.beat = null;
    this.deadline = null;
    this.id = 0;
  }

  start() {
    this.stop();
    this.beat = this.timers.setInterval(() => {
      if (this.active()) this.check();
    }, this.interval);
  }

  stop() {
    if (this.beat !== null) this.timers.clearInterval(this.beat);
    if (this.deadline !== null) this.timers.clearTimeout(this.deadline);
    this.beat = this.deadline = null;
  }

  get running() {
    return this.beat !== null;
  }

  /** Ask now; a question already out keeps its own deadline. */
  check() {
    if (this.beat === null || this.deadline !== null) return;
    this.id += 1;
    this.deadline = this.timers.setTimeout(() => {
      this.deadline = null;
      this.stop();
      this.dead();
    }, this.timeout);
    this.ping(this.id);
  }

  /** A frame came: the socket carries frames both ways. */
  heard() {
    if (this.deadline !== null) {
      this.timers.clearTimeout(this.deadline);
      this.deadline = null;
    }
  }
}
