/*
 * Host pages and native apps (docs/ui-contract.md, "Events for host pages and native bridges").
 *
 * Out: every event is a CustomEvent on window, a message to whichever native bridge is present, and a postMessage
 * to the parent frame's configured origins. In: window.vizochok.send(text) / .newConversation() for native hosts
 * (evaluateJavascript, injectJavaScript, runJavaScript), and {type: "vizochok:command", command, text} posted by a
 * parent frame from a configured origin.
 */
import { CHAT_DATA } from "./hooks.js";

let parentOrigins = [];

/** The native bridges present in this WebView, as functions that take the JSON message. */
function nativeBridges() {
  const found = [];
  const w = window;
  if (w.webkit && w.webkit.messageHandlers && w.webkit.messageHandlers.vizochok) {
    found.push((message) => w.webkit.messageHandlers.vizochok.postMessage(message));
  }
  if (w.VizochokAndroid && w.VizochokAndroid.postMessage) found.push((m) => w.VizochokAndroid.postMessage(m));
  if (w.ReactNativeWebView && w.ReactNativeWebView.postMessage) found.push((m) => w.ReactNativeWebView.postMessage(m));
  if (w.VizochokFlutter && w.VizochokFlutter.postMessage) found.push((m) => w.VizochokFlutter.postMessage(m));
  return found;
}

/**
 * Tells every host. Returns whether a listener on this window called preventDefault() (for cancelable events) and
 * whether a native bridge received it, so the caller can tell "a host handled it" from "nobody did".
 */
export function emit(name, detail, { cancelable = false } = {}) {
  const type = "vizochok:" + name;
  const event = new CustomEvent(type, { detail, cancelable });
  window.dispatchEvent(event);
  const message = JSON.stringify({ type, detail });
  let bridged = false;
  for (const post of nativeBridges()) {
    try {
      post(message);
      bridged = true;
    } catch {
      /* a broken host bridge must not break the chat */
    }
  }
  if (window.parent !== window) {
    // Only to the configured origins (#chat[data-parent-origins]): a page that frames us is not trusted by default.
    for (const origin of parentOrigins) {
      try {
        window.parent.postMessage(message, origin);
      } catch {
        /* not a valid origin: skip */
      }
    }
  }
  return { canceled: event.defaultPrevented, bridged };
}

/**
 * Installs the host commands; ``send`` and ``newConversation`` return whether they went; ``configure`` applies the
 * widget options a configured parent posts (embed.js), checked like the server's.
 */
export function installHostCommands(chat, { send, newConversation, configure }) {
  parentOrigins = (chat.dataset[CHAT_DATA.parentOrigins] || "").split(/\s+/).filter(Boolean);
  window.vizochok = Object.freeze({ send, newConversation });
  window.addEventListener("message", (evt) => {
    if (evt.source !== window.parent || window.parent === window || !parentOrigins.includes(evt.origin)) return;
    let data = evt.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch {
        return;
      }
    }
    if (!data || data.type !== "vizochok:command") return;
    if (data.command === "send") send(data.text);
    if (data.command === "new_conversation") newConversation();
    if (data.command === "configure" && configure) configure(data.options);
  });
}
