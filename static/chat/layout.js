/*
 * What the page looks like around the conversation: the embed's theme, an input the on-screen keyboard never covers,
 * and, in a storefront's panel (embed.js), the close button in the header (a separate bar would cost a phone 36 px).
 */
import { emit } from "./bridges.js";
import { ID, SEL } from "./hooks.js";

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
