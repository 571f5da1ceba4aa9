// The page's pending states (static/chat/lifecycle.js): every transition written down there, and that each state
// ends. Run by `node --test tests/js/` (tests/js/test_node.py runs it under pytest).
import assert from "node:assert/strict";
import { describe, mock, test } from "node:test";

import {
  CONNECTION,
  connectionStep,
  Heartbeat,
  hasSocket,
  Outbox,
  pageState,
  Pending,
  turnStep,
} from "../../static/chat/lifecycle.js";

/** localStorage's interface over a Map (Node has no localStorage). */
class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(name) {
    return this.items.has(name) ? this.items.get(name) : null;
  }
  setItem(name, value) {
    this.items.set(name, String(value));
  }
  removeItem(name) {
    this.items.delete(name);
  }
  key(n) {
    return [...this.items.keys()][n] ?? null;
  }
  get length() {
    return this.items.size;
  }
}

describe("connection", () => {
  test("a socket opens, catches up, is lost and comes back", () => {
    let state = "connecting";
    const seen = [state];
    for (const event of ["open", "caughtUp", "lost", "retry", "open", "caughtUp"]) {
      state = connectionStep(state, event);
      seen.push(state);
    }
    assert.deepEqual(seen, ["connecting", "syncing", "live", "waiting", "connecting", "syncing", "live"]);
  });

  test("a wake-up while a socket exists changes nothing (one socket at a time)", () => {
    for (const state of ["connecting", "syncing", "live"]) {
      assert.equal(connectionStep(state, "wake"), state);
      assert.equal(connectionStep(state, "retry"), state);
      assert.ok(hasSocket(state));
    }
  });

  test("lost from every state with a socket, waiting in none", () => {
    for (const state of ["connecting", "syncing", "live"]) assert.equal(connectionStep(state, "lost"), "waiting");
    for (const state of ["waiting", "given-up", "closed"]) {
      assert.equal(connectionStep(state, "lost"), state);
      assert.ok(!hasSocket(state));
    }
  });

  test("a final close is never retried; only Try again leaves it", () => {
    const closed = connectionStep("live", "final");
    assert.equal(closed, "closed");
    for (const event of ["retry", "wake", "open", "lost"]) assert.equal(connectionStep(closed, event), "closed");
    assert.equal(connectionStep(closed, "tryAgain"), "connecting");
  });

  test("given up: a wake-up or Try again starts afresh", () => {
    const given = connectionStep("waiting", "gaveUp");
    assert.equal(given, "given-up");
    assert.equal(connectionStep(given, "wake"), "connecting");
    assert.equal(connectionStep(given, "tryAgain"), "connecting");
  });

  test("from every state, the shopper's Try again leads back to live", () => {
    for (const state of Object.keys(CONNECTION)) {
      let current = hasSocket(state) ? connectionStep(state, "lost") : state;
      for (const event of ["tryAgain", "open", "caughtUp"]) current = connectionStep(current, event);
      assert.equal(current, "live", state);
    }
  });
});

describe("turn and the page's state", () => {
  test("sent lasts until the server's first word, whatever it is", () => {
    assert.equal(turnStep("ready", "sent"), "sent");
    assert.equal(turnStep("sent", "busy"), "busy");
    assert.equal(turnStep("sent", "ready"), "ready"); // a refusal comes with "ready"
    assert.equal(turnStep("busy", "sent"), "busy"); // one turn at a time
    assert.equal(turnStep("busy", "ready"), "ready");
  });

  test("data-state by connection and turn", () => {
    assert.equal(pageState("connecting", "ready", false), "connecting");
    assert.equal(pageState("connecting", "ready", true), "offline");
    assert.equal(pageState("waiting", "busy", true), "offline");
    assert.equal(pageState("waiting", "ready", false), "connecting");
    assert.equal(pageState("syncing", "ready", true), "ready");
    assert.equal(pageState("live", "busy", true), "busy");
    assert.equal(pageState("live", "sent", true), "busy");
    assert.equal(pageState("given-up", "ready", true), "error");
    assert.equal(pageState("closed", "busy", true), "error");
  });

  test("a send waiting in the outbox keeps an open page busy: it goes first, one turn at a time", () => {
    assert.equal(pageState("syncing", "ready", true, true), "busy"); // it goes once the catch-up is in
    assert.equal(pageState("live", "ready", true, true), "busy"); // a hold, or another tab's turn just ended
    assert.equal(pageState("live", "ready", true, false), "ready");
    assert.equal(pageState("waiting", "ready", true, true), "offline"); // offline: more may be queued behind it
  });
});

describe("outbox", () => {
  test("kept in storage in order, and restored by a new page", () => {
    const storage = new MemoryStorage();
    const outbox = new Outbox(storage, "outbox:c1");
    outbox.add({ key: "a", frame: '{"text":"хліб"}', label: "хліб", text: "хліб" });
    outbox.add({ key: "b", frame: '{"text":"молоко"}', label: "молоко", text: "молоко" });
    outbox.markSent("a");
    const reloaded = new Outbox(storage, "outbox:c1");
    assert.deepEqual(
      reloaded.entries.map((entry) => [entry.key, entry.label, entry.sent]),
      [
        ["a", "хліб", false], // nothing is on a socket after a reload
        ["b", "молоко", false],
      ],
    );
    assert.equal(new Outbox(storage, "outbox:c2").size, 0, "another conversation's outbox is its own");
    assert.equal(new Outbox(storage, "outbox:c").size, 0, "nor is one whose id is a prefix of it");
  });

  test("one entry on its way at a time, in order, each until the server stores it", () => {
    const outbox = new Outbox(new MemoryStorage(), "o");
    outbox.add({ key: "a", frame: "A", label: "a" });
    outbox.add({ key: "b", frame: "B", label: "b" });
    assert.equal(outbox.next().key, "a");
    outbox.markSent("a");
    assert.equal(outbox.next(), null);
    assert.equal(outbox.inFlight().key, "a");
    assert.equal(outbox.stored("a").key, "a");
    assert.equal(outbox.next().key, "b");
    assert.equal(outbox.stored("a"), null, "a second confirmation of the same key changes nothing");
  });

  test("lost on the way: sent again with the same key", () => {
    const outbox = new Outbox(new MemoryStorage(), "o");
    outbox.add({ key: "a", frame: "A", label: "a" });
    outbox.markSent("a");
    assert.deepEqual(
      outbox.lost().map((entry) => entry.key),
      ["a"],
    );
    assert.equal(outbox.next().key, "a");
    assert.equal(outbox.next().frame, "A");
  });

  test("refused: done and given back, unless the refusal says to wait", () => {
    const outbox = new Outbox(new MemoryStorage(), "o");
    outbox.add({ key: "a", frame: "A", label: "a", text: "a" });
    outbox.markSent("a");
    assert.equal(outbox.refused("agent_busy"), null);
    assert.equal(outbox.next().key, "a", "another tab's turn: it waits and goes again");
    outbox.markSent("a");
    assert.equal(outbox.refused("invalid_quantity").text, "a");
    assert.equal(outbox.size, 0);
    assert.equal(outbox.refused("invalid_quantity"), null, "a refusal with nothing on its way ends nothing");
  });

  test("discarded: gone from the page and from storage", () => {
    const storage = new MemoryStorage();
    const outbox = new Outbox(storage, "o");
    outbox.add({ key: "a", frame: "A", label: "a" });
    outbox.discard("a");
    assert.equal(storage.length, 0);
  });

  test("two tabs of one conversation keep each other's entries; a reload sees both, in order", () => {
    const storage = new MemoryStorage();
    const first = new Outbox(storage, "o");
    const second = new Outbox(storage, "o");
    first.add({ key: "a", frame: "A", label: "a" });
    second.add({ key: "b", frame: "B", label: "b" });
    first.add({ key: "c", frame: "C", label: "c" });
    first.stored("a");
    assert.deepEqual(
      new Outbox(storage, "o").entries.map((entry) => entry.key),
      ["b", "c"],
    );
    assert.equal(new Outbox(storage, "other").size, 0);
  });

  test("entries made in one millisecond keep their order", () => {
    const storage = new MemoryStorage();
    const outbox = new Outbox(storage, "o");
    for (const key of ["z", "y", "x", "w"]) outbox.add({ key, frame: key, label: key });
    assert.deepEqual(
      new Outbox(storage, "o").entries.map((entry) => entry.key),
      ["z", "y", "x", "w"],
    );
  });

  test("unreadable storage restores nothing and breaks nothing", () => {
    const storage = new MemoryStorage();
    storage.setItem("o:bad", "{not json");
    storage.setItem("o:1", JSON.stringify({ key: 1 }));
    storage.setItem("o:null", "null");
    storage.setItem("o:other", JSON.stringify({ key: "k", frame: "F", label: "l" })); // under another key's name
    storage.setItem("o:k", JSON.stringify({ key: "k", frame: "F", label: "l", at: 5 }));
    assert.deepEqual(
      new Outbox(storage, "o").entries.map((entry) => entry.key),
      ["k"],
    );
    const full = {
      length: 0,
      key: () => null,
      getItem: () => null,
      setItem: () => {
        throw new Error("quota");
      },
      removeItem: () => {},
    };
    const outbox = new Outbox(full, "o");
    outbox.add({ key: "a", frame: "A", label: "a" });
    assert.equal(outbox.size, 1, "kept in the page when storage refuses");
    const forbidden = {
      get length() {
        throw new Error("SecurityError");
      },
    };
    assert.equal(new Outbox(forbidden, "o").size, 0);
  });
});

describe("pending adds", () => {
  test("a card's add ends with its turn, whatever ended it (the stuck-card repro)", () => {
    const pending = new Pending();
    pending.add("k1", "milk-001");
    assert.deepEqual(pending.turnEnded(), [], "a turn-state from before the send ends nothing");
    pending.stored("k1");
    assert.deepEqual(pending.turnEnded(), ["k1"], "the refusal in text ended the turn: the card works again");
    assert.equal(pending.size, 0);
  });

  test("refused before it ran (by its key), or ended by an error, a stop, a cart change", () => {
    const pending = new Pending();
    pending.add("k1", "a");
    pending.stored("k1");
    pending.add("k2", "b");
    assert.deepEqual(pending.discard("k2"), ["k2"], "the refused send ends; the running one goes on");
    assert.ok(pending.has("k1"));
    pending.add("k3", "c");
    assert.deepEqual(pending.endAll(), ["k1", "k3"]);
    assert.deepEqual(pending.discard("k3"), [], "ended once");
    pending.add("k4", "d");
    pending.add("k5", "e");
    assert.deepEqual(pending.endAll((key) => key === "k5"), ["k4"], "a queued add waits for its own turn");
    assert.equal(pending.size, 1);
  });
});

describe("heartbeat", () => {
  function beating(options = {}) {
    const pings = [];
    let deaths = 0;
    const heart = new Heartbeat({
      interval: 5000,
      timeout: 4000,
      ping: (id) => pings.push(id),
      dead: () => (deaths += 1),
      ...options,
    });
    return { heart, pings, deaths: () => deaths };
  }

  test("a silent socket is given up within interval + timeout", (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    const { heart, pings, deaths } = beating();
    heart.start();
    t.mock.timers.tick(5000);
    assert.deepEqual(pings, [1]);
    t.mock.timers.tick(3999);
    assert.equal(deaths(), 0);
    t.mock.timers.tick(1);
    assert.equal(deaths(), 1);
    assert.ok(!heart.running, "a dead socket's heart stops");
    t.mock.timers.tick(60000);
    assert.equal(deaths(), 1);
    assert.deepEqual(pings, [1]);
  });

  test("any frame heard answers the ping; it keeps beating", (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    const { heart, pings, deaths } = beating();
    heart.start();
    for (let n = 0; n < 5; n++) {
      t.mock.timers.tick(5000);
      t.mock.timers.tick(100);
      heart.heard();
    }
    assert.equal(pings.length, 5);
    assert.equal(deaths(), 0);
  });

  test("a check pings at once; a second check waits for the first answer", (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    const { heart, pings, deaths } = beating();
    heart.start();
    heart.check();
    heart.check();
    assert.deepEqual(pings, [1]);
    t.mock.timers.tick(4000);
    assert.equal(deaths(), 1);
  });

  test("hidden: no pings (a phone's background tab), and nothing declared dead", (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    let visible = false;
    const { heart, pings, deaths } = beating({ active: () => visible });
    heart.start();
    t.mock.timers.tick(60000);
    assert.deepEqual(pings, []);
    visible = true;
    t.mock.timers.tick(5000);
    assert.deepEqual(pings, [1]);
    assert.equal(deaths(), 0);
  });

  test("stopped (the socket closed): no ping and no death after", (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    const { heart, pings, deaths } = beating();
    heart.start();
    t.mock.timers.tick(5000);
    heart.stop();
    heart.check();
    t.mock.timers.tick(60000);
    assert.deepEqual(pings, [1]);
    assert.equal(deaths(), 0);
  });
});
