/*
 * Every hook the page's scripts read from the server's HTML, declared once.
 *
 * The templates that write them: templates/chat/page.html (the page and its ids), templates/chat/items/*.html (log
 * items, each marked with data-item), templates/chat/parts/*.html (badge, cart panel) and
 * templates/chat/fragments/*.html (what the socket sends). The ids (ID), the item kinds (ITEM) and the buttons'
 * actions (ACTION) reach those templates from here: they write them with {% hook "ID.log" %}, and
 * chat/presentation/hooks.py reads this file (keep each group's shape: one `key: "value",` per line). The other
 * hooks are spelled in the templates, and tests/chat/test_hooks.py checks them against this file; change those in
 * both places. The public ones (state, actions, events) are also in the UI contract (docs/ui-contract.md).
 */

/** Ids of the page's fixed elements (page.html). */
export const ID = Object.freeze({
  chat: "chat",
  composer: "composer",
  textarea: "composer-text",
  banner: "connection-banner",
  announcer: "chat-announcer",
  log: "chat-log",
  status: "chat-status",
  turnState: "turn-state",
  queueState: "queue-state", // swapped out of band by fragments/queue.html
  cartBadge: "cart-badge",
  cartPanel: "cart-panel",
  cartBody: "cart-panel-body",
  newConversation: "new-conversation",
  menu: "chat-menu",
  texts: "chat-texts", // wording for the scripts, as data-* (chat/presentation/texts.py PAGE_TEXTS)
  counter: "composer-count",
  limitNote: "composer-limit",
  sheet: "product-sheet",
  sheetBody: "product-sheet-body",
  sheetTitle: "product-sheet-title",
  conversation: "chat-conversation", // the conversation's public id (value): the outbox's storage is per conversation
});

/**
 * data-item: what a node the server inserted is (items/*.html, parts/*.html, fragments/*.html). The script reacts to
 * these values, never to ids or classes that happen to be there.
 */
export const ITEM = Object.freeze({
  user: "user", // the shopper's text or action (items/user_text.html, items/user_action.html)
  assistant: "assistant", // a stored assistant reply (items/assistant_text.html)
  streaming: "streaming", // the bubble being streamed (fragments/text_delta.html)
  cards: "cards", // items/product_cards.html
  quickReplies: "quick-replies", // items/quick_replies.html
  checklist: "checklist", // items/checklist.html
  cartNote: "cart-note", // items/cart.html
  error: "error", // a stored error (items/error.html)
  stopped: "stopped", // a turn the shopper stopped before any text came (items/error.html, code "stopped")
  refusal: "refusal", // a refused send, shown to this tab only (fragments/error.html)
  notice: "notice", // items/notice.html
  turnState: "turn-state", // fragments/turn_state.html and page.html: data-state = ready | busy
  // fragments/queue.html and page.html: data-position = the turn's place in the deployment's line, absent otherwise
  queueState: "queue-state",
  cart: "cart", // parts/cart_panel.html: data-cart (JSON), data-change (the cart action, on a live change)
  badge: "badge", // parts/cart_badge.html
});

/** Attributes the script reads (and, for data-state and data-pending, writes). */
export const ATTR = Object.freeze({
  item: "data-item",
  // The names of htmx's WebSocket extension, kept as the page's own hooks (the extension is not loaded: the page owns
  // its socket, connection.js): the socket's URL on #chat, and the forms whose submit is sent over it.
  socketUrl: "ws-connect",
  wsSend: "ws-send",
  seq: "data-seq", // a stored item's sequence number in its conversation
  replaces: "data-replaces", // a final reply names the streamed bubble it takes the place of
  fallback: "data-fallback", // "bubble": a streamed chunk that may start its bubble in a tab that lacks it
  bubble: "data-bubble",
  // Positions of streamed text (fragments/text_delta.html, positions.js): the characters a bubble shows, and where a
  // streamed chunk starts in its bubble.
  length: "data-length",
  offset: "data-offset",
  code: "data-code", // errors: the upstream's or the relay's code
  cart: "data-cart",
  change: "data-change",
  reconnect: "data-reconnect", // the banner's "Try again"
  closeCart: "data-close-cart",
  closeSheet: "data-close-sheet",
  check: "data-check", // checklist bulk buttons: "all" | "none"
  action: "data-action", // public: decrement, increment, add, remove, ...
  pending: "data-pending", // set by the script on a card whose Add is on its way
  error: "data-error", // set by the script on a card whose Add was refused
  // Public (the UI contract): a pending bubble of the outbox, made by the script (outbox.js), until the server has
  // stored what it says; and on every bubble of the shopper's, the send key it was sent with (items/user_*.html).
  outbox: "data-outbox",
  key: "data-key",
  noNetwork: "data-no-network", // on #chat while the device says it is offline: the banner says so (connection.js)
  retryAfter: "data-retry-after", // a "rate_limited" refusal: seconds to wait (fragments/error.html)
  sku: "data-sku", // a card's or a cart line's product; on a refusal (fragments/error.html): the cart line it is for
  quantity: "data-quantity", // a cart line's quantity in the cart (parts/cart_panel.html), as a machine number
  value: "data-value", // a starter's, a quick reply's, a rating button's value
  announce: "data-announce", // on a reply's rating group when the reply was re-rendered for its rating (_rating.html)
});

/**
 * The window slot where early.js leaves the socket it opened before the page's modules arrived (issue 22);
 * connection.js adopts it. early.js loads alone, so it spells this key, ID.chat and ATTR.socketUrl itself.
 */
export const EARLY_SOCKET = Symbol.for("vizochok.early-socket");

/**
 * Data attributes of the server's elements (and the few the script writes), read through element.dataset: the
 * camelCase key of each data-* (data-unit-label is dataset.unitLabel). #chat's own are CHAT_DATA's.
 */
export const DATA = Object.freeze({
  // A stepper's bounds on a card (items/_product_card.html) or a cart line (parts/cart_panel.html), read by cards.js:
  // the step, the minimum, the maximum (VIZOCHOK_MAX_QUANTITY) and the unit's short label.
  step: "step",
  min: "min",
  max: "max",
  unitLabel: "unitLabel",
  sku: "sku", // a card's or a cart line's product (public: .product-card[data-sku], .cart-line[data-sku])
  quantity: "quantity", // a cart line's quantity in the cart, as a machine number (parts/cart_panel.html)
  checkoutUrl: "checkoutUrl", // the checkout button's VIZOCHOK_CHECKOUT_URL (page.html)
  limit: "limit", // the composer's longest message (page.html, chat.web.frames.MAX_TEXT_CHARS)
  state: "state", // turn-state's ready | busy (fragments/turn_state.html); #chat[data-state] (public, state.js)
  position: "position", // queue-state's place in line (fragments/queue.html)
  value: "value", // a starter's, a quick reply's or a rating button's value
  action: "action", // a button's data-action (ACTION)
  rating: "rating", // a reply's rating group: its current value (items/_rating.html)
  announce: "announce", // a re-rendered rating's words for the screen reader (items/_rating.html)
  role: "role", // a bubble's role: user | assistant (items/user_*.html; the outbox's pending bubble)
  copied: "copied", // set by the script on a copy button for a moment after it copied (log-controls.js)
});

/**
 * Every data-action value of the page's buttons (public: docs/ui-contract.md). The templates write them with
 * {% hook "ACTION.add" %}; the selectors in SEL name them too, and tests/chat/test_hooks.py checks that each one a
 * selector names is declared here.
 */
export const ACTION = Object.freeze({
  increment: "increment", // a stepper's + (items/_product_card.html, parts/cart_panel.html)
  decrement: "decrement", // a stepper's −
  add: "add", // a card's Add (items/_product_card.html)
  details: "details", // a card's picture and name: open its sheet
  remove: "remove", // a cart line's remove (parts/cart_panel.html)
  undo: "undo", // the cart panel's undo after a remove
  checkout: "checkout", // the cart panel's checkout (VIZOCHOK_CHECKOUT_URL)
  menu: "menu", // the header's menu button (page.html)
  close: "close", // the header's close, inside a host's frame or view
  stop: "stop", // the composer's Stop while a turn runs
  retry: "retry", // a failed or stopped turn's Retry (items/_retry.html)
  copy: "copy", // a reply's copy button (items/assistant_text.html)
  rate: "rate", // a reply's rating buttons (items/_rating.html)
  rateReason: "rate-reason", // a down-rating's reasons (items/_rating_reasons.html)
  discard: "discard", // the outbox's pending bubble: drop it (made by outbox.js)
});

/** Data attributes of #chat (page.html), read through element.dataset. */
export const CHAT_DATA = Object.freeze({
  lang: "lang",
  lastSeq: "lastSeq",
  parentOrigins: "parentOrigins",
  backoffInitial: "backoffInitial",
  backoffMax: "backoffMax",
  backoffJitter: "backoffJitter",
  backoffAttempts: "backoffAttempts",
  noReconnectCodes: "noReconnectCodes",
  heartbeatInterval: "heartbeatInterval", // ms between the page's pings while visible (connection.js)
  heartbeatTimeout: "heartbeatTimeout", // ms a ping may go unanswered before the socket is given up
  queuePosition: "queuePosition", // public (#chat[data-queue-position]): written by feed.js from queue-state
});

/** Classes the script builds with (a streamed bubble it must start itself: fragments/text_delta.html). */
export const CLASS = Object.freeze({
  streamDone: "msg__done", // the finished lines of a streamed reply, as sanitised HTML
  streamTail: "msg__tail", // the line still being written, as text
  daySeparator: "day-separator", // built by times.js where the day changes
  sheetCard: "product-card--sheet", // the copy of a card in the product sheet (sheet.js)
  outbox: "msg--outbox", // a pending bubble (outbox.js)
  outboxStatus: "msg__outbox-status", // its "not sent yet" / "sending" line
  outboxDiscard: "msg__discard", // its discard button
  avatar: "chat-header__avatar", // the header's avatar, an <img> when the embed names a picture (layout.js)
  // The parts of a bubble (items/user_text.html), which the outbox builds its pending ones from.
  message: "msg",
  messageText: "msg__text",
  messageMeta: "msg__meta",
  messageTime: "msg__time",
  linkButton: "link-button", // a button that looks like a link (chat.css)
  visuallyHidden: "visually-hidden", // read by screen readers, not shown (chat.css)
});

/** Selectors of the public hooks (docs/ui-contract.md) and of the parts the script drives. */
export const SEL = Object.freeze({
  sendButton: "button[type=submit]",
  menuToggle: "button[data-action=menu]",
  closeChat: "button[data-action=close]",
  stop: "button[data-action=stop]",
  card: ".product-card, .product-card--sheet", // a card in the log, or its copy in the product sheet
  cardImage: ".product-card__img",
  cardProblem: ".product-card__problem",
  quantityProblem: ".product-card__problem, .cart-line__problem", // [role=alert] of a card or a cart line
  cartLine: ".cart-line[data-sku]", // public: a line of the cart panel (parts/cart_panel.html)
  cartLines: ".cart-lines", // the panel's scrolling list
  cartLineStepper: ".cart-line__qty", // the line's stepper form (update_quantity)
  undo: "button[data-action=undo]", // public: after a remove, in the cart panel's summary
  cardMedia: ".product-card__media",
  cardName: ".product-card__name",
  cardOpen: ".product-card__open",
  cardDescription: ".product-card__description",
  cardAdd: "[data-action=add]",
  decrement: "[data-action=decrement]",
  increment: "[data-action=increment]",
  moreCards: ".cards__more", // "Show more" cards (items/_more_cards.html), replaced by the cards it fetched
  focusAfterMore: "button[data-action=add], .cards__more-btn", // where focus goes in the cards it fetched
  checklistBox: "input[type=checkbox]",
  avatar: ".chat-header__avatar",
  botName: ".chat-header h1",
  welcome: ".welcome", // the empty conversation's greeting (page.html), the embed's welcome_message replaces it
  details: "[data-action=details]",
  errorText: ".chat-error__text",
  message: ".msg",
  messageText: ".msg__text",
  messageTime: "time.msg__time",
  messageMeta: ".msg__meta",
  starters: ".starters",
  starter: ".starter[data-value]",
  jump: ".chat-jump",
  copy: "button[data-action=copy]",
  checkout: "[data-action=checkout]",
  quantity: "input[name=quantity]",
  quickReplies: ".quick-replies",
  openQuickReplyPills: ".quick-replies:not(.quick-replies--retired) button:disabled",
  checklist: ".checklist",
  lockedChecklistSets: "form.checklist:not(.checklist--submitted) fieldset[disabled]",
  streaming: ".msg--streaming",
  outbox: ".msg[data-outbox]",
  discard: "button[data-action=discard]",
  cartLineName: ".cart-line__name",
  pendingButtons: "button[type=submit], [data-action=add]", // inside a card or cart line with a send on its way
  // Reply feedback (issue 25; items/_rating.html, items/_rating_reasons.html; public: the UI contract).
  rating: ".rating",
  rate: "button[data-action=rate]",
  rateReason: "button[data-action=rate-reason]",
  rateText: "textarea[name=feedback_text]",
});

/**
 * Hooks no template writes: the script makes them (tests/chat/test_hooks.py checks every other one against the
 * templates).
 */
export const MADE_BY_SCRIPT = Object.freeze([
  "data-pending", // cards.js: a card or a cart line whose send is on its way
  "data-error", // cards.js: a card whose Add was refused
  "data-outbox", // outbox.js: a pending bubble
  "data-no-network", // connection.js: on #chat while the device is offline
  "data-queue-position", // feed.js: on #chat while this conversation's turn waits (public)
  "data-copied", // log-controls.js
  "data-action=discard", // outbox.js: the pending bubble's discard button
  "msg--outbox",
  "msg__outbox-status",
  "msg__discard",
  "day-separator", // times.js
  "product-card--sheet", // sheet.js: the copy of a card in the product sheet
  "product-sheet-title", // sheet.js: the id of the sheet's copy of the card's name (ID.sheetTitle)
]);
