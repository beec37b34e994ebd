// Evidence from the playback page: export a range as MP4 or as a signed evidence bundle (with
// download progress), and verify a range's signatures ("verified" or the first failure).

import { api, seg, ApiError } from "./api.js";
import { h } from "./dom.js";
import { iso, local } from "./time.js";

/**
 * Downloads `url` showing progress in `bar`, then hands the file to the browser.
 * @param {string} url
 * @param {string} fallbackName
 * @param {(done: number, total: number | null) => void} progress
 */
export async function download(url, fallbackName, progress) {
  const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) {
    let msg = `the server answered ${res.status}`;
    let code = `http_${res.status}`;
    try { const j = await res.json(); msg = j.message || msg; code = j.code || code; } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, code, msg);
  }
  const total = Number(res.headers.get("Content-Length")) || null;
  const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1] || fallbackName;
  /** @type {BlobPart[]} */
  const chunks = [];
  let done = 0;
  const reader = /** @type {ReadableStream<Uint8Array>} */ (res.body).getReader();
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    chunks.push(/** @type {Uint8Array<ArrayBuffer>} */ (value));
    done += value.byteLength;
    progress(done, total);
  }
  const blob = new Blob(chunks, { type: res.headers.get("Content-Type") || "application/octet-stream" });
  const href = URL.createObjectURL(blob);
  const a = h("a", { href, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
  return { name, bytes: done };
}

/** @param {number} n */
function bytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

export class EvidencePanel {
  /**
   * @param {{canExport: boolean, canVerify: boolean, onFailure: (at: number | null, text: string) => void}} opts
   */
  constructor(opts) {
    this.opts = opts;
    /** @type {{from: number, to: number} | null} */
    this.range = null;
    /** @type {string[]} */
    this.cameras = [];
    this.rangeText = h("span", { class: "range", text: "No range selected: shift-drag on the timeline, or use Mark in / Mark out." });
    this.progress = /** @type {HTMLProgressElement} */ (h("progress", { max: "1", value: "0", hidden: true, "aria-label": "Export progress" }));
    this.result = h("div", { class: "evidence-result", role: "status", "aria-live": "polite" });
    this.buttons = [
      opts.canExport ? h("button", { type: "button", onclick: () => this.export("mp4"), text: "Export MP4" }) : null,
      opts.canExport ? h("button", { type: "button", onclick: () => this.export("bundle"), text: "Export evidence bundle" }) : null,
      opts.canVerify ? h("button", { type: "button", onclick: () => this.verify(), text: "Verify signatures" }) : null,
    ].filter((b) => b !== null);
    this.el = h("section", { class: "evidence", "aria-label": "Evidence" },
      h("h2", { text: "Evidence" }), this.rangeText, h("div", { class: "actions" }, this.buttons), this.progress, this.result);
    this.update();
  }

  /** @param {{from: number, to: number} | null} range @param {string[]} cameras */
  set(range, cameras) {
    this.range = range;
    this.cameras = cameras;
    this.update();
  }

  update() {
    const ok = !!this.range && this.range.to > this.range.from && this.cameras.length > 0;
    for (const b of this.buttons) /** @type {HTMLButtonElement} */ (b).disabled = !ok;
    if (this.range) {
      this.rangeText.textContent = `${local(this.range.from)} → ${local(this.range.to)} (${((this.range.to - this.range.from) / 1e6).toFixed(1)} s) · ${this.cameras.join(", ")}`;
    }
  }

  /** @param {"mp4" | "bundle"} format */
  async export(format) {
    if (!this.range) return;
    const { from, to } = this.range;
    this.result.textContent = "";
    for (const cam of this.cameras) {
      const url = `/api/v1/cameras/${seg(cam)}/export?from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(iso(to))}&format=${format}`;
      this.progress.hidden = false;
      this.progress.removeAttribute("value");
      try {
        const r = await download(url, `${cam}.${format === "mp4" ? "mp4" : "tar"}`, (done, total) => {
          if (total) { this.progress.max = total; this.progress.value = done; }
          this.result.textContent = `Exporting ${cam}: ${bytes(done)}${total ? ` of ${bytes(total)}` : ""}…`;
        });
        this.result.textContent = format === "bundle"
          ? `Saved ${r.name} (${bytes(r.bytes)}): a signed evidence bundle. Unpack it (tar -xf) and check it anywhere with: vigil verify DIR --fingerprint <CA fingerprint>.`
          : `Saved ${r.name} (${bytes(r.bytes)}).`;
      } catch (e) {
        this.result.textContent = `Export of ${cam} failed: ${e instanceof Error ? e.message : e}`;
        this.result.className = "evidence-result error";
      } finally {
        this.progress.hidden = true;
      }
    }
  }

  async verify() {
    if (!this.range) return;
    const { from, to } = this.range;
    this.result.className = "evidence-result";
    this.result.textContent = "Verifying…";
    /** @type {HTMLElement[]} */
    const lines = [];
    let firstFailure = /** @type {{at: number | null, text: string} | null} */ (null);
    for (const cam of this.cameras) {
      try {
        const a = await api("POST", `/api/v1/cameras/${seg(cam)}/verify?from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(iso(to))}`);
        const f = a.report && a.report.failure;
        if (a.verified) {
          lines.push(h("p", { class: "verified" }, h("strong", { text: "✔ verified" }), ` ${cam}: ${a.summary}`));
        } else {
          const at = f && typeof f.at_us === "number" ? f.at_us : null;
          const kind = f ? String(f.kind) : "not verified";
          lines.push(h("p", { class: a.tampered ? "tampered" : "unsigned" },
            h("strong", { text: a.tampered ? `✘ ${kind}` : `⚠ ${kind}` }),
            ` ${cam}${at != null ? ` at ${local(at)}` : ""}: ${a.summary}`));
          if (!firstFailure) firstFailure = { at, text: `${cam}: ${kind}` };
        }
      } catch (e) {
        lines.push(h("p", { class: "error", text: `${cam}: ${e instanceof Error ? e.message : e}` }));
      }
    }
    this.result.textContent = "";
    for (const l of lines) this.result.appendChild(l);
    if (firstFailure) this.opts.onFailure(firstFailure.at, firstFailure.text);
    else this.opts.onFailure(null, "");
  }
}
