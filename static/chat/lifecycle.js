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
 *   waiting|running --error|stopped|cartChanged|discard--> (gone)
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
 * #chat[data-state] (the UI contract) from the connection and the turn: "connecting" until the first socket has
 * opened or failed, "offline" while reconnecting, "error" when given up, else "busy" or "ready" by the turn.
 */
export function pageState(connection, turn, everConnected) {
  if (connection === "closed" || connection === "given-up") return "error";
  if (connection === "connecting" || connection === "waiting") return everConnected ? "offline" : "connecting";
  return turn === "ready" ? "ready" : "busy";
}

/** Refusals after which an outbox entry is sent again later rather than given back (a turn of another tab runs). */
export const REQUEUE_CODES = Object.freeze(["agent_busy"]);

/**
 * What the shopper sent and the server has not stored yet, in order, kept in ``storage`` (localStorage) under
 * ``name`` so a reload or an app kill loses nothing. An entry: {key, frame (the JSON sent), label (the bubble's
 * words), text (the composer's words, "" for an action), sku, at (ms), sent (on the current socket)}.
 */
export class Outbox {
  constructor(storage, name) {
    this.storage = storage;
    this.name = name;
    this.entries = [];
    this.load();
  }

  load() {
    let saved = [];
    try {
      saved = JSON.parse((this.storage && this.storage.getItem(this.name)) || "[]");
    } catch (err) {
      saved = []; // unreadable (another version, a full disk): nothing to restore
    }
    // Nothing is on a socket after a reload: whatever was sent may go again, with its key.
    this.entries = Array.isArray(saved)
      ? saved.filter((entry) => entry && typeof entry.key === "string" && typeof entry.frame === "string")
      : [];
    this.entries.forEach((entry) => (entry.sent = false));
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.entries.length) this.storage.setItem(this.name, JSON.stringify(this.entries));
      else this.storage.removeItem(this.name);
    } catch (err) {
      // Storage full or forbidden (a private window): the page still holds the entries until it is closed.
    }
  }

  add(entry) {
    const added = { text: "", sku: "", at: Date.now(), ...entry, sent: false };
    this.entries.push(added);
    this.save();
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
    this.save();
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

  /** An error, a stop, a cart change: every add ends. */
  endAll() {
    return this.end(() => true);
  }

  discard(key) {
    return this.adds.delete(key) ? [key] : [];
  }

  end(which) {
    const ended = [];
    for (const [key, add] of this.adds) {
      if (which(add)) {
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
