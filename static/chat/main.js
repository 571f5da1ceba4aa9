/*
 * The chat page's behaviour, one module per job (htmx swaps the server's fragments in):
 *   connection.js  the socket, its reconnect schedule, catch-up
 *   feed.js        what the server sent: one element per item, handlers by data-item
 *   positions.js   streamed text by position: keep only what this tab lacks, ask for a catch-up on a gap
 *   state.js       #chat[data-state]
 *   sending.js     every send: one turn at a time, idempotency keys
 *   outbox.js      sends kept until the server has them: shown while offline, kept across reloads, sent once
 *   lifecycle.js   every pending state and its transitions (connection, turn, outbox, pending adds, heartbeat)
 *   composer.js    the textarea
 *   cards.js       steppers, checklists, pending Adds, images
 *   cart.js        the cart panel and cart events
 *   sheet.js       the product sheet
 *   feedback.js    rating a reply (up, down and why)
 *   bridges.js     host pages and native apps
 *   announcer.js   screen-reader announcements
 *   menu.js        the menu: inside the screen, closing by itself
 *   log-controls.js  starters, copying a reply, the jump to the newest message
 *   times.js       message times and day separators
 *   layout.js      theme, the on-screen keyboard, the embed's close button
 *   texts.js       wording and numbers in the page's language
 *   hooks.js       every id, class and data-* attribute read from the templates
 * No inline scripts: everything is wired here so the page can run under a strict CSP (script-src 'self').
 */
import { installHostCommands } from "./bridges.js";
import * as cards from "./cards.js";
import * as cart from "./cart.js";
import * as composer from "./composer.js";
import * as connection from "./connection.js";
import * as feed from "./feed.js";
import * as feedback from "./feedback.js";
import { CHAT_DATA, ID } from "./hooks.js";
import * as layout from "./layout.js";
import * as menu from "./menu.js";
import * as outbox from "./outbox.js";
import * as positions from "./positions.js";
import * as sending from "./sending.js";
import * as sheet from "./sheet.js";
import { setLanguage } from "./texts.js";

const chat = document.getElementById(ID.chat);

function hostNewConversation() {
  const button = document.getElementById(ID.newConversation);
  if (!button) return false;
  button.form.requestSubmit();
  return true;
}

if (chat) {
  const lang = chat.dataset[CHAT_DATA.lang] || document.documentElement.lang || "uk";
  setLanguage(lang);
  installHostCommands(chat, {
    send: composer.hostSend,
    newConversation: hostNewConversation,
    configure: layout.configure,
  });
  layout.init(chat);
  cards.init(lang);
  cart.init();
  menu.init();
  sheet.init();
  composer.init();
  feed.init();
  sending.init();
  outbox.init(document.getElementById(ID.conversation).value, {
    sync: () => positions.requestSync(feed.position()),
    toBottom: feed.toBottom,
  });
  feedback.init();
  positions.init({ sendNow: connection.sendNow });
  connection.init(chat, { frame: feed.frame, sync: feed.syncFrame });
}
