// Building the page. Server text (camera names, user names, audit details, reasons) only
// ever becomes text nodes or attribute values through these helpers: never HTML
// (docs/web-client.md, "Rules").

/**
 * @typedef {string | number | Node | null | undefined | false} Child
 * @typedef {Record<string, any>} Attrs
 */

/**
 * Creates an element. `attrs` keys: `class`, `text`, `dataset` (object), `on<event>`
 * (functions, added as listeners), booleans (`hidden`, `disabled`...), anything else as an
 * attribute. Children that are strings or numbers become text nodes.
 * @param {string} tag
 * @param {Attrs} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = String(v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/**
 * @param {Node} parent
 * @param {(Child | Child[])[]} children
 */
export function append(parent, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/**
 * Replaces the children of `el`.
 * @param {Node} el
 * @param {...(Child | Child[])} children
 */
export function replace(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/**
 * A labelled form field.
 * @param {string} label
 * @param {HTMLElement} input
 * @param {string} [hint]
 */
export function field(label, input, hint) {
  if (!input.id) input.id = `f-${Math.random().toString(36).slice(2, 10)}`;
  return h("div", { class: "field" },
    h("label", { for: input.id, text: label }),
    input,
    hint ? h("p", { class: "hint", text: hint }) : null);
}

/** Elements the keyboard can reach inside `root`, in order. @param {HTMLElement} root */
export function focusable(root) {
  return /** @type {HTMLElement[]} */ ([...root.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex]")])
    .filter((el) => el.tabIndex >= 0 && !(/** @type {any} */ (el).disabled) && el.getClientRects().length > 0);
}

/**
 * A modal dialog (native <dialog>: the page behind it is inert). Tab and Shift+Tab cycle through
 * its controls and never leave it, Escape closes it, and the focus goes back to where it was
 * (or, when that element is gone, to the page's main area). Resolves with the value passed to
 * `close`, or null when dismissed.
 * @param {string} title
 * @param {(close: (v: any) => void) => (Child | Child[])} body
 * @returns {Promise<any>}
 */
export function dialog(title, body) {
  return new Promise((resolve) => {
    const opener = /** @type {HTMLElement | null} */ (document.activeElement);
    const heading = h("h2", { id: `dlg-${Math.random().toString(36).slice(2, 10)}`, text: title });
    const dlg = /** @type {HTMLDialogElement} */ (h("dialog", { class: "dialog", "aria-labelledby": heading.id }));
    let result = null;
    const close = (/** @type {any} */ v) => { result = v; dlg.close(); };
    append(dlg, [heading, body(close)]);
    dlg.addEventListener("keydown", (e) => {
      if (e.key !== "Tab") return;
      const items = focusable(dlg);
      if (!items.length) { e.preventDefault(); return; }
      const first = items[0];
      const last = items[items.length - 1];
      const at = document.activeElement;
      if (e.shiftKey && (at === first || !dlg.contains(at))) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && (at === last || !dlg.contains(at))) { e.preventDefault(); first.focus(); }
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      const back = opener && opener !== document.body && opener.isConnected ? opener : document.getElementById("main");
      back?.focus();
      resolve(result);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/**
 * A short message at the bottom of the screen.
 * @param {string} text
 * @param {"info" | "error"} [kind]
 */
export function toast(text, kind = "info") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.appendChild(host);
  }
  const t = h("div", { class: `toast ${kind}`, text });
  host.appendChild(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * A table of rows; every cell is text or an element built with `h`. A row is its cells, or
 * `{cells, attrs}` for a row with attributes of its own.
 * @param {string} label
 * @param {string[]} heads
 * @param {(any[] | {cells: any[], attrs: Record<string, any>})[]} rows
 * @param {string} [cls] a class of its own
 */
export function table(label, heads, rows, cls) {
  /** @param {any[]} cells @param {Record<string, any>} [attrs] */
  const tr = (cells, attrs = {}) => h("tr", attrs, cells.map((c) => h("td", {}, c ?? "")));
  return h("table", { class: cls ? `data ${cls}` : "data", "aria-label": label },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.length ? rows.map((r) => (Array.isArray(r) ? tr(r) : tr(r.cells, r.attrs))) : h("tr", {}, h("td", { colspan: String(heads.length), class: "empty", text: "Nothing here yet." }))));
}

/** @param {unknown} e */
export function msg(e) {
  return e instanceof Error ? e.message : String(e);
}
