/*
 * The chat page's behaviour around htmx's WebSocket extension.
 *
 * htmx swaps the server's out-of-band fragments; this file adds what htmx does not do:
 * - the reconnect policy of the VIZOCHOK SDK (min(1000*2^n, 10000) ms, +/-25 % jitter, 30 tries) after any close,
 *   and at once on `online`, `visibilitychange` and `pageshow`;
 * - catch-up after a reconnect (a `sync` frame with the last sequence number seen) and fallbacks for fragments
 *   whose target is missing in this tab (it joined late);
 * - an idempotency key on every send, so a queue resent after a reconnect never starts a turn twice;
 * - `#chat[data-state]`, the steppers, the cart panel, focus and screen-reader announcements;
 * - events for host pages and native bridges (shared/ui-contract.md).
 * No inline scripts: everything is wired here so the page can run under a strict CSP.
 */
(function () {
  "use strict";

  var chat = document.getElementById("chat");
  if (!chat) return;

  var lang = chat.dataset.lang || document.documentElement.lang || "uk";
  var composer = document.getElementById("composer");
  var textarea = document.getElementById("composer-text");
  var banner = document.getElementById("connection-banner");
  var announcer = document.getElementById("chat-announcer");
  var log = document.getElementById("chat-log");

  var backoff = {
    initial: Number(chat.dataset.backoffInitial) || 1000,
    maximum: Number(chat.dataset.backoffMax) || 10000,
    jitter: Number(chat.dataset.backoffJitter) || 0.25,
    attempts: Number(chat.dataset.backoffAttempts) || 30,
  };
  var AUTO_RECONNECT_CODES = [1006, 1011, 1012, 1013];
  var NO_RECONNECT_CODES = [4403];

  var socket = null; // htmx's socket wrapper (public interface)
  var isOpen = false;
  var attempts = 0;
  var retryTimer = null;
  var lastSeq = Number(chat.dataset.lastSeq) || 0;
  var turnState = document.getElementById("turn-state").dataset.state || "ready";
  var queuedWhileOffline = 0;
  var unconfirmedText = ""; // the composer's last send, until the server shows it as the shopper's bubble

  // --- bridge to host pages and native apps -----------------------------------------------------------------

  var parentOrigins = (chat.dataset.parentOrigins || "").split(/\s+/).filter(Boolean);

  function emit(name, detail) {
    var type = "vizochok:" + name;
    window.dispatchEvent(new CustomEvent(type, { detail: detail }));
    var message = JSON.stringify({ type: type, detail: detail });
    try {
      if (window.webkit && window.webkit.messageHandlers && window.webkit.messageHandlers.vizochok) {
        window.webkit.messageHandlers.vizochok.postMessage(message);
      }
      if (window.VizochokAndroid && window.VizochokAndroid.postMessage) window.VizochokAndroid.postMessage(message);
      if (window.ReactNativeWebView && window.ReactNativeWebView.postMessage) window.ReactNativeWebView.postMessage(message);
      if (window.VizochokFlutter && window.VizochokFlutter.postMessage) window.VizochokFlutter.postMessage(message);
    } catch (err) {
      /* a broken host bridge must not break the chat */
    }
    if (window.parent !== window) {
      // Only to the configured origins (#chat[data-parent-origins]): a page that frames us is not trusted by default.
      parentOrigins.forEach(function (origin) {
        try { window.parent.postMessage(message, origin); } catch (err) { /* not a valid origin: skip */ }
      });
    }
  }

  // Host commands. Native hosts call window.vizochok.send(text) / .newConversation() (evaluateJavascript,
  // injectJavaScript, runJavaScript); a parent frame posts {type: "vizochok:command", command, text} from a
  // configured origin. A send waits for the "ready" state like the shopper's own; it returns whether it went.
  function hostSend(text) {
    text = String(text == null ? "" : text).trim();
    if (!text || (chat.dataset.state !== "ready" && chat.dataset.state !== "offline")) return false;
    textarea.value = text.slice(0, Number(textarea.maxLength) > 0 ? textarea.maxLength : 2000);
    composer.requestSubmit();
    return true;
  }

  function hostNewConversation() {
    var button = document.getElementById("new-conversation");
    if (!button) return false;
    button.form.requestSubmit();
    return true;
  }

  window.vizochok = Object.freeze({ send: hostSend, newConversation: hostNewConversation });

  window.addEventListener("message", function (evt) {
    if (evt.source !== window.parent || window.parent === window || parentOrigins.indexOf(evt.origin) < 0) return;
    var data = evt.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (err) { return; }
    }
    if (!data || data.type !== "vizochok:command") return;
    if (data.command === "send") hostSend(data.text);
    if (data.command === "new_conversation") hostNewConversation();
    if (data.command === "configure") configure(data.options);
  });

  // Theme from the server's options (settings or a signed entry token): set through the CSSOM, which a strict CSP
  // allows.
  [["themePrimary", "--primary"], ["themePrimaryText", "--primary-text"], ["themeFont", "--font"],
    ["themeRadius", "--radius"]].forEach(function (pair) {
    if (chat.dataset[pair[0]]) document.documentElement.style.setProperty(pair[1], chat.dataset[pair[0]]);
  });

  // Widget options from a configured parent frame (embed.js posts its data- attributes): the same rules as the
  // server's (chat/web/embed.py), applied to this frame only and never stored. Text goes in as text, never HTML.
  function cleanText(value, limit) {
    var text = typeof value === "string" ? value.split(/\s+/).filter(Boolean).join(" ") : "";
    return text ? text.slice(0, limit) : "";
  }

  function matching(value, pattern) {
    return typeof value === "string" && pattern.test(value.trim()) ? value.trim() : "";
  }

  function textOn(color) {
    var hex = color.slice(1);
    if (hex.length === 3) hex = hex.replace(/./g, "$&$&");
    var lum = [0, 2, 4].map(function (i) {
      var c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.179 ? "#000000" : "#ffffff";
  }

  function configure(options) {
    if (!options || typeof options !== "object") return;
    var root = document.documentElement.style;
    var color = matching(options.primary_color, /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/);
    if (color) {
      root.setProperty("--primary", color);
      root.setProperty("--primary-text", textOn(color));
    }
    var font = matching(options.font_family, /^[A-Za-z0-9 ,'"-]{1,120}$/);
    if (font) root.setProperty("--font", font);
    var radius = matching(options.border_radius, /^(?:0|\d{1,2}(?:\.\d{1,2})?(?:px|rem|em))$/);
    if (radius) root.setProperty("--radius", radius);
    var name = cleanText(options.bot_name, 40);
    var avatar = document.querySelector(".chat-header__avatar");
    if (name) {
      document.querySelector(".chat-header h1").textContent = name;
      if (avatar && avatar.tagName === "SPAN") avatar.textContent = name.slice(0, 1).toUpperCase();
    }
    var picture = typeof options.bot_avatar === "string" ? options.bot_avatar.trim() : "";
    if (picture && picture.length <= 500 && /^https?:\/\/[^\s"'<>]+$/i.test(picture) && avatar) {
      var img = document.createElement("img");
      img.className = "chat-header__avatar";
      img.alt = "";
      img.width = 36;
      img.height = 36;
      img.referrerPolicy = "no-referrer";
      img.src = picture;
      avatar.replaceWith(img);
    }
    var placeholder = cleanText(options.placeholder, 100);
    if (placeholder) textarea.placeholder = placeholder;
    var welcome = cleanText(options.welcome_message, 500);
    var greeting = log.querySelector(".welcome");
    if (welcome && greeting) greeting.textContent = welcome;
  }

  // The on-screen keyboard must never cover the input. Chrome resizes the layout (interactive-widget), iOS only
  // shrinks the visual viewport: follow its height and keep the composer in view while typing.
  if (window.visualViewport) {
    var fitViewport = function () {
      document.documentElement.style.setProperty("--app-height", Math.round(window.visualViewport.height) + "px");
      if (document.activeElement === textarea) textarea.scrollIntoView({ block: "nearest" });
    };
    window.visualViewport.addEventListener("resize", fitViewport);
    fitViewport();
  }

  // --- state ------------------------------------------------------------------------------------------------

  function setState(state) {
    chat.dataset.state = state;
    var busy = state !== "ready";
    textarea.disabled = busy && state !== "offline";
    composer.querySelector("button[type=submit]").disabled = busy && !(state === "offline" && !queuedWhileOffline);
    banner.hidden = !(state === "offline" || state === "error");
    if (state === "ready") {
      queuedWhileOffline = 0;
      if (!document.activeElement || document.activeElement === document.body || document.activeElement === textarea) {
        textarea.focus({ preventScroll: true });
      }
    }
  }

  function applyTurnState() {
    if (!isOpen) return;
    setState(turnState === "busy" ? "busy" : "ready");
  }

  // --- reconnecting -----------------------------------------------------------------------------------------

  function delayFor(attempt) {
    var base = Math.min(backoff.initial * Math.pow(2, attempt), backoff.maximum);
    return base * (1 + backoff.jitter * (2 * Math.random() - 1));
  }

  // htmx reconnects by itself after 1006/1011/1012/1013; give it our schedule instead of its 64 s cap.
  htmx.config.wsReconnectDelay = function (retryCount) {
    attempts = retryCount + 1;
    if (retryCount >= backoff.attempts) {
      setState("error");
      return 2147483647; // give up; the banner's button reconnects by hand
    }
    return delayFor(retryCount);
  };

  function reconnectSoon(now) {
    if (isOpen || !socket || retryTimer) return;
    if (attempts >= backoff.attempts && !now) {
      setState("error");
      return;
    }
    var wait = now ? 0 : delayFor(attempts);
    attempts += 1;
    retryTimer = setTimeout(function () {
      retryTimer = null;
      if (!isOpen) socket.reconnect();
    }, wait);
  }

  chat.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    isOpen = true;
    attempts = 0;
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    // Catch up first: anything stored while this tab was away comes back, then the turn state.
    syncWanted = true;
    socket.sendImmediately(syncFrame());
    applyTurnState();
    emit("connect", {});
  });

  chat.addEventListener("htmx:wsClose", function (evt) {
    socket = evt.detail.socketWrapper;
    var wasOpen = isOpen;
    isOpen = false;
    var code = evt.detail.event && evt.detail.event.code;
    if (NO_RECONNECT_CODES.indexOf(code) >= 0) {
      setState("error");
    } else {
      setState("offline");
      if (AUTO_RECONNECT_CODES.indexOf(code) < 0) reconnectSoon(false);
    }
    if (wasOpen) emit("disconnect", { code: code });
  });

  function wakeUp() {
    if (!isOpen && socket && chat.dataset.state !== "connecting") {
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
      reconnectSoon(true);
    }
  }
  window.addEventListener("online", wakeUp);
  window.addEventListener("pageshow", function (evt) {
    if (evt.persisted) wakeUp();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") wakeUp();
  });
  document.addEventListener("click", function (evt) {
    if (evt.target.closest("[data-reconnect]")) {
      attempts = 0;
      setState("offline");
      reconnectSoon(true);
    }
  });

  // --- sending ------------------------------------------------------------------------------------------------

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }

  chat.addEventListener("htmx:wsConfigSend", function (evt) {
    var form = evt.target;
    var state = chat.dataset.state;
    if (state === "busy" || state === "error" || (state === "offline" && queuedWhileOffline)) {
      evt.preventDefault(); // one turn at a time; one message may wait for the connection
      return;
    }
    if (state === "offline") queuedWhileOffline += 1;
    evt.detail.headers = null; // the relay needs none of htmx's request headers
    evt.detail.parameters.key = newKey();
    if (form === composer) {
      var text = textarea.value.trim();
      if (!text) {
        evt.preventDefault();
        return;
      }
      evt.detail.parameters.text = text;
      unconfirmedText = text;
      textarea.value = "";
      autoGrow();
    }
    var card = form.closest(".product-card");
    if (card) {
      card.dataset.pending = "true";
      card.querySelector("[data-action=add]").disabled = true;
      emit("product_click", { sku: card.dataset.sku, quantity: parseQuantity(evt.detail.parameters.quantity) });
    }
    var pills = form.closest(".quick-replies");
    if (pills) pills.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    var checklist = form.closest(".checklist");
    if (checklist) checklist.querySelector("fieldset").disabled = true;
    if (state !== "offline") setState("busy");
    stick = true;
  });

  textarea.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (chat.dataset.state === "ready" || chat.dataset.state === "offline") composer.requestSubmit();
    }
  });

  function autoGrow() {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 160) + "px";
  }
  textarea.addEventListener("input", autoGrow);

  // --- steppers, checklists, cart panel ----------------------------------------------------------------------

  // Quantities are shown and typed with the language's decimal mark ("0,3" in Ukrainian); the server reads both.
  var quantityFormat = new Intl.NumberFormat(lang, { maximumFractionDigits: 3, useGrouping: false });

  function parseQuantity(text) {
    var value = String(text == null ? "" : text).replace(/\s/g, "").replace(",", ".");
    return value === "" ? NaN : Number(value);
  }

  function decimals(value) {
    var text = String(value);
    return text.indexOf(".") < 0 ? 0 : text.length - text.indexOf(".") - 1;
  }

  function bounds(card) {
    var stepValue = Number(card.dataset.step) || 1;
    return {
      step: stepValue,
      minimum: Number(card.dataset.min) || stepValue,
      places: Math.max(decimals(card.dataset.step), decimals(card.dataset.min)),
    };
  }

  function syncStepper(card) {
    var current = parseQuantity(card.querySelector("input[name=quantity]").value);
    card.querySelector("[data-action=decrement]").disabled = !(current > bounds(card).minimum);
  }

  function step(card, direction) {
    var input = card.querySelector("input[name=quantity]");
    var limits = bounds(card);
    var current = parseQuantity(input.value);
    var next = (isNaN(current) ? limits.minimum : current) + direction * limits.step;
    next = Math.max(limits.minimum, Math.min(999, Number(next.toFixed(limits.places))));
    input.value = quantityFormat.format(next);
    syncStepper(card);
  }

  document.addEventListener("input", function (evt) {
    var card = evt.target.matches && evt.target.matches("input[name=quantity]") && evt.target.closest(".product-card");
    if (card) syncStepper(card);
  });

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest("button");
    if (!button) return;
    var card = button.closest(".product-card");
    if (card && button.dataset.action === "increment") step(card, 1);
    if (card && button.dataset.action === "decrement") step(card, -1);
    if (button.dataset.check) {
      var checked = button.dataset.check === "all";
      button.closest(".checklist").querySelectorAll("input[type=checkbox]").forEach(function (box) {
        box.checked = checked;
      });
    }
    if (button.id === "cart-badge") openCart(button);
    if (button.hasAttribute("data-close-cart")) document.getElementById("cart-panel").close();
  });

  var cartOpener = null;
  function openCart(opener) {
    var panel = document.getElementById("cart-panel");
    cartOpener = opener;
    if (!panel.open) panel.showModal();
  }
  document.getElementById("cart-panel").addEventListener("close", function () {
    var badge = document.getElementById("cart-badge");
    (badge || cartOpener || textarea).focus();
  });

  // --- what the server swapped in ----------------------------------------------------------------------------

  function clearPendingCards(message) {
    document.querySelectorAll(".product-card[data-pending]").forEach(function (card) {
      delete card.dataset.pending;
      card.querySelector("[data-action=add]").disabled = false;
      if (message) card.dataset.error = message;
    });
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  }

  var processed = new WeakSet();

  // Keep one element per log item: a catch-up that overlaps a live fragment, or a final reply replacing the
  // streamed bubble, lands in the place of the element it duplicates.
  function place(node) {
    if (node.dataset.replaces) {
      var live = document.getElementById(node.dataset.replaces);
      if (live) live.replaceWith(node);
    }
    if (/^(msg-\d+|live-[\w-]+)$/.test(node.id)) {
      document.querySelectorAll('[id="' + node.id + '"]').forEach(function (twin) {
        if (twin !== node) twin.replaceWith(node);
      });
    }
  }

  function seen(node) {
    if (node.nodeType !== 1 || processed.has(node)) return;
    processed.add(node);
    place(node);
    var seq = Number(node.dataset && node.dataset.seq);
    if (seq > lastSeq) lastSeq = seq;
    if (node.id === "turn-state") {
      syncWanted = false; // a catch-up ends with the turn state
      turnState = node.dataset.state;
      if (turnState === "ready") {
        // A bubble still streaming when the turn is over lost its end while this tab was away; the stored
        // reply came back with the catch-up.
        log.querySelectorAll(".msg--streaming").forEach(function (stale) { stale.remove(); });
      }
      applyTurnState();
    }
    if (node.id === "cart-panel-body" && node.dataset.change) {
      var cart = {};
      try { cart = JSON.parse(node.dataset.cart || "{}"); } catch (err) { cart = {}; }
      cart.action = node.dataset.change;
      clearPendingCards(null);
      emit("cart_changed", cart);
    }
    if (node.dataset.role === "user") unconfirmedText = "";
    if (node.classList.contains("chat-error--transient")) {
      // Nothing was sent: choices this tab locked on sending are open again (the server re-renders used ones).
      log.querySelectorAll("form.checklist:not(.checklist--submitted) fieldset[disabled]").forEach(function (set) {
        set.disabled = false;
      });
      log.querySelectorAll(".quick-replies:not(.quick-replies--retired) button:disabled").forEach(function (pill) {
        pill.disabled = false;
      });
    }
    if (node.classList.contains("chat-error--transient") && unconfirmedText) {
      // The send was refused before it was stored: give the shopper their words back instead of losing them.
      if (!textarea.value.trim()) {
        textarea.value = unconfirmedText;
        autoGrow();
      }
      unconfirmedText = "";
    }
    if (node.classList.contains("chat-error")) {
      clearPendingCards(node.textContent.trim());
      emit("error", { code: node.dataset.code });
      // role=alert announces itself on insertion; repeating it in the polite announcer would read it twice.
    }
    if (node.dataset.role === "assistant" && node.dataset.seq && !node.classList.contains("msg--streaming")) {
      unannounced.push(node.textContent.trim()); // spoken when the turn is over: once per reply, never per token
    }
  }

  // A turn may finish several texts (a recipe, then "untick what you have"); setting the polite region once per
  // text could replace one before a screen reader has read it, so the whole reply is announced at the turn's end.
  var unannounced = [];
  function announceFinishedReply() {
    if (turnState !== "ready" || !unannounced.length) return;
    announce(unannounced.join("\n\n"));
    unannounced = [];
  }

  function announce(text) {
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text.trim().slice(0, 600); }, 50);
  }

  // Follow new content while the shopper is at the bottom; leave them be while they read further up. Scrolling here
  // is instant: a smooth scroll in flight fires scroll events that would read as "the shopper scrolled away".
  var stick = true;
  function toBottom() {
    log.scrollTo({ top: log.scrollHeight, behavior: "instant" });
  }
  log.addEventListener("scroll", function () { stick = nearBottom(); }, { passive: true });

  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(seen);
    });
    announceFinishedReply();
    if (stick) toBottom();
  }).observe(chat, { childList: true, subtree: true });

  // A product image that fails to load (gone, refused, blocked) leaves the card's letter placeholder, not a broken icon.
  document.addEventListener(
    "error",
    function (evt) {
      var img = evt.target;
      if (img && img.classList && img.classList.contains("product-card__img")) img.remove();
    },
    true
  );
  // Images of the first paint may have failed before this deferred script was there to hear it.
  // (decode() rejects only for a broken image; an SVG without a size of its own still decodes.)
  document.querySelectorAll(".product-card__img").forEach(function (img) {
    if (img.complete) img.decode().catch(function () { img.remove(); });
  });

  // "Show more" cards replace the button that asked for them: keep keyboard focus in the list, on the first new card.
  var lastCardBeforeMore = null;
  document.body.addEventListener("htmx:beforeSwap", function (evt) {
    var more = evt.detail.target && evt.detail.target.closest && evt.detail.target.closest(".cards__more");
    lastCardBeforeMore = more ? more.previousElementSibling : null;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (!lastCardBeforeMore) return;
    var first = lastCardBeforeMore.nextElementSibling;
    lastCardBeforeMore = null;
    var add = first && first.querySelector("button[data-action=add], .cards__more-btn");
    if (add) add.focus({ preventScroll: false });
  });


  // --- streamed text by position (chat/feed/feed.py) ---------------------------------------------------------
  // Every piece of a streaming bubble says where it starts in the bubble's text (data-offset, in code points).
  // This tab keeps only what lies beyond what it has, so a catch-up that overlaps live pieces never shows text
  // twice; a piece that would leave a gap (or whose bubble this tab lacks) asks for a catch-up instead of
  // showing a middle piece alone. A sync says what the tab has: the last stored seq and the live bubble's length.

  var syncWanted = false;

  function chars(text) {
    return Array.from(text).length;
  }

  function syncFrame() {
    var frame = { kind: "sync", after: lastSeq };
    var live = log.querySelector(".msg--streaming");
    var liveText = live && document.getElementById(live.id + "-text");
    if (liveText) {
      frame.bubble = live.id;
      frame.offset = chars(liveText.textContent);
    }
    return JSON.stringify(frame);
  }

  function requestSync() {
    if (!isOpen || !socket || syncWanted) return;
    syncWanted = true;
    socket.sendImmediately(syncFrame());
  }

  document.body.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var piece = evt.detail.fragment;
    if (!piece || !piece.querySelector) return;
    var bubble = piece.querySelector(".msg--streaming");
    if (bubble) {
      // The first piece of a bubble this tab already has (from a catch-up): keep the longer one it has.
      if (document.getElementById(bubble.id)) evt.detail.shouldSwap = false;
      return;
    }
    if (!piece.dataset || piece.dataset.offset === undefined) return;
    var offset = Number(piece.dataset.offset);
    var have = chars(evt.detail.target.textContent);
    var text = Array.from(piece.textContent);
    if (offset > have) {
      evt.detail.shouldSwap = false;
      requestSync();
    } else if (offset + text.length <= have) {
      evt.detail.shouldSwap = false;
    } else if (offset < have) {
      piece.textContent = text.slice(have - offset).join("");
    }
  });

  // A streamed piece whose bubble this tab lacks (it joined mid-reply): catch up rather than start from the middle.
  document.body.addEventListener("htmx:oobErrorNoTarget", function (evt) {
    var content = evt.detail.content;
    if (content && content.dataset && content.dataset.fallback === "bubble") requestSync();
  });

  toBottom();
  autoGrow();
})();
