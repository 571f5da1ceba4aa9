/*
 * What the page looks like around the conversation: the embed's theme, an input the on-screen keyboard never covers,
 * and, in a storefront's panel (embed.js), the close button in the header (a separate bar would cost a phone 36 px).
 */
import { emit } from "./bridges.js";
import { CLASS, ID, SEL } from "./hooks.js";

const THEME = [
  ["themePrimary", "--primary"],
  ["themePrimaryText", "--primary-text"],
  ["themeFont", "--font"],
  ["themeRadius", "--radius"],
];

export function init(chat) {
  // Theme from the embed's options (validated by the server): set through the CSSOM, which a strict CSP allows.
  for (const [name, property] of THEME) {
    if (chat.dataset[name]) document.documentElement.style.setProperty(property, chat.dataset[name]);
  }
  // Chrome resizes the layout (interactive-widget), iOS only shrinks the visual viewport: follow its height and
  // keep the composer in view while typing.
  if (window.visualViewport) {
    const textarea = document.getElementById(ID.textarea);
    const fit = () => {
      document.documentElement.style.setProperty("--app-height", Math.round(window.visualViewport.height) + "px");
      if (document.activeElement === textarea) textarea.scrollIntoView({ block: "nearest" });
    };
    window.visualViewport.addEventListener("resize", fit);
    fit();
  }
  // The close button is rendered for embedded visits and shown only in a frame, where a parent can close the panel
  // (a native app's WebView has its own navigation). The host hears vizochok:close.
  const closer = document.querySelector(SEL.closeChat);
  if (closer && window.parent !== window) {
    closer.hidden = false;
    closer.addEventListener("click", () => emit("close", {}));
  }
}

// Widget options from a configured parent frame (embed.js posts its data- attributes): the same rules as the server's
// (chat/web/embed.py), applied to this frame only and never stored. Text goes in as text, never as HTML.

function cleanText(value, limit) {
  const text = typeof value === "string" ? value.split(/\s+/).filter(Boolean).join(" ") : "";
  return text ? text.slice(0, limit) : "";
}

function matching(value, pattern) {
  return typeof value === "string" && pattern.test(value.trim()) ? value.trim() : "";
}

function textOn(color) {
  let hex = color.slice(1);
  if (hex.length === 3) hex = hex.replace(/./g, "$&$&");
  const lum = [0, 2, 4].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2] > 0.179 ? "#000000" : "#ffffff";
}

export function configure(options) {
  if (!options || typeof options !== "object") return;
  const root = document.documentElement.style;
  const color = matching(options.primary_color, /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/);
  if (color) {
    root.setProperty("--primary", color);
    root.setProperty("--primary-text", textOn(color));
  }
  const font = matching(options.font_family, /^[A-Za-z0-9 ,'"-]{1,120}$/);
  if (font) root.setProperty("--font", font);
  const radius = matching(options.border_radius, /^(?:0|\d{1,2}(?:\.\d{1,2})?(?:px|rem|em))$/);
  if (radius) root.setProperty("--radius", radius);
  const name = cleanText(options.bot_name, 40);
  const avatar = document.querySelector(SEL.avatar);
  if (name) {
    document.querySelector(SEL.botName).textContent = name;
    if (avatar && avatar.tagName === "SPAN") avatar.textContent = name.slice(0, 1).toUpperCase();
  }
  const picture = typeof options.bot_avatar === "string" ? options.bot_avatar.trim() : "";
  if (picture && picture.length <= 500 && /^https?:\/\/[^\s"'<>]+$/i.test(picture) && avatar) {
    const img = document.createElement("img");
    img.className = CLASS.avatar;
    img.alt = "";
    img.width = 36;
    img.height = 36;
    img.referrerPolicy = "no-referrer";
    img.src = picture;
    avatar.replaceWith(img);
  }
  const placeholder = cleanText(options.placeholder, 100);
  const textarea = document.getElementById(ID.textarea);
  if (placeholder && textarea) textarea.placeholder = placeholder;
  const welcome = cleanText(options.welcome_message, 500);
  const greeting = document.querySelector(SEL.welcome);
  if (welcome && greeting) greeting.textContent = welcome;
}
