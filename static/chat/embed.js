/*
 * VIZOCHOK chat for storefronts: one script tag gives a floating button that opens the chat in an iframe panel.
 *
 *   <script src="https://chat.example.com/static/chat/embed.js" defer
 *           data-position="bottom-right" data-primary-color="#2D8A4E" data-bot-name="Помічник"
 *           data-token-url="/api/vizochok-token"></script>
 *
 * The chat (and the VIZOCHOK key) stay on the chat server; this file only draws the button and the panel and
 * relays events. Options, as data- attributes (docs/embedding.md): position, primary-color, font-family,
 * border-radius, bot-name, bot-avatar, placeholder, welcome-message, language, token or token-url.
 * The look options are posted to the chat frame (never put in its URL, where any link could set them); the chat
 * applies them only if this page's origin is one of its VIZOCHOK_EMBED_PARENT_ORIGINS, and validates them again.
 *
 * Events from the chat (docs/ui-contract.md) are accepted only from the chat's origin and from our own iframe,
 * and re-dispatched on this window as CustomEvents (`vizochok:cart_changed`, ...). `window.VizochokEmbed` offers
 * open(), close(), toggle(), send(text) and newConversation().
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.VizochokEmbed) return;
  var chatOrigin = new URL(script.src, document.baseURI).origin;
  var options = script.dataset;
  var OPTION_PARAMS = {
    primaryColor: "primary_color",
    fontFamily: "font_family",
    borderRadius: "border_radius",
    botName: "bot_name",
    botAvatar: "bot_avatar",
    placeholder: "placeholder",
    welcomeMessage: "welcome_message",
  };
  var language = options.language || document.documentElement.lang || "uk";
  var TEXTS = {
    uk: { open: "Відкрити чат-помічника", close: "Закрити чат", title: "Чат-помічник" },
    en: { open: "Open the shopping assistant", close: "Close the chat", title: "Shopping assistant" },
    ru: { open: "Открыть чат-помощника", close: "Закрыть чат", title: "Чат-помощник" },
  };
  var texts = TEXTS[language.slice(0, 2)] || TEXTS.uk;

  var stylesheet = document.createElement("link");
  stylesheet.rel = "stylesheet";
  stylesheet.href = new URL("embed.css", script.src).href;
  document.head.appendChild(stylesheet);

  var root = document.createElement("div");
  root.className = "vizochok-embed vizochok-embed--" + (options.position === "bottom-left" ? "left" : "right");
  if (/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(options.primaryColor || "")) {
    root.style.setProperty("--vizochok-primary", options.primaryColor);
  }

  var button = document.createElement("button");
  button.type = "button";
  button.className = "vizochok-embed__button";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "vizochok-embed-panel");
  button.setAttribute("aria-label", texts.open);
  button.innerHTML =
    '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false"><path fill="currentColor" ' +
    'd="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2zm3 6v2h2v-2zm4 0v2h2v-2zm4 0v2h2v-2z"/></svg>';

  var panel = document.createElement("div");
  panel.className = "vizochok-embed__panel";
  panel.id = "vizochok-embed-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", options.botName || texts.title);
  panel.hidden = true;

  // No bar of our own above the chat: its header has a close button in a frame (vizochok:close), so a phone keeps
  // the whole screen for the conversation.

  root.appendChild(panel);
  root.appendChild(button);

  var frame = null;
  var pending = []; // commands given before the chat was ready

  function chatUrl(token) {
    var params = new URLSearchParams();
    params.set("embed", "1");
    params.set("lang", language);
    if (token) params.set("token", token);
    return chatOrigin + "/?" + params.toString();
  }

  function lookOptions() {
    var look = {};
    Object.keys(OPTION_PARAMS).forEach(function (name) {
      if (options[name]) look[OPTION_PARAMS[name]] = options[name];
    });
    return look;
  }

  function token() {
    if (options.token) return Promise.resolve(options.token);
    if (!options.tokenUrl) return Promise.resolve("");
    // The storefront's own backend signs its signed-in customer (docs/embedding.md); cookies go along.
    return fetch(options.tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : {}; })
      .then(function (body) { return (body && body.token) || ""; })
      .catch(function () { return ""; });
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.className = "vizochok-embed__frame";
    frame.title = options.botName || texts.title;
    frame.setAttribute("referrerpolicy", "origin");
    // Every page the frame loads (the first, "New conversation", a language link) gets the look again.
    frame.addEventListener("load", function () {
      var look = lookOptions();
      if (!Object.keys(look).length) return;
      frame.contentWindow.postMessage(
        JSON.stringify({ type: "vizochok:command", command: "configure", options: look }), chatOrigin
      );
    });
    panel.appendChild(frame);
    token().then(function (value) { frame.src = chatUrl(value); });
  }

  function open() {
    ensureFrame();
    panel.hidden = false;
    root.classList.add("vizochok-embed--open");
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-label", texts.close);
    frame.focus();
  }

  function hide() {
    panel.hidden = true;
    root.classList.remove("vizochok-embed--open");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", texts.open);
    button.focus();
  }

  function toggle() {
    if (panel.hidden) open(); else hide();
  }

  var connected = false;
  function command(message) {
    if (!frame || !connected) {
      pending.push(message);
      if (!frame) ensureFrame();
      return;
    }
    frame.contentWindow.postMessage(JSON.stringify(message), chatOrigin);
  }

  button.addEventListener("click", toggle);
  panel.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape") hide();
  });

  window.addEventListener("message", function (evt) {
    if (!frame || evt.source !== frame.contentWindow || evt.origin !== chatOrigin) return;
    var data = evt.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (_ignored) { return; }
    }
    if (!data || typeof data.type !== "string" || data.type.indexOf("vizochok:") !== 0) return;
    if (data.type === "vizochok:connect") {
      connected = true;
      pending.splice(0).forEach(command);
    }
    if (data.type === "vizochok:disconnect") connected = false;
    if (data.type === "vizochok:close") hide();
    window.dispatchEvent(new CustomEvent(data.type, { detail: data.detail || {} }));
  });

  window.VizochokEmbed = Object.freeze({
    open: open,
    close: hide,
    toggle: toggle,
    send: function (text) { command({ type: "vizochok:command", command: "send", text: String(text) }); },
    newConversation: function () { command({ type: "vizochok:command", command: "new_conversation" }); },
  });

  function mount() { document.body.appendChild(root); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
