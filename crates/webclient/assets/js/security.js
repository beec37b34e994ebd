// The connection indicator in the page frame: a padlock with the certificate's issuer when the
// page came over HTTPS to a name the certificate covers, a "Not secure" banner otherwise.

import { api } from "./api.js";
import { h, replace } from "./dom.js";

/**
 * @typedef {{issuer: string, subject: string, names: string[], not_after: string,
 *   days_left: number, fingerprint_sha256: string}} Connection
 */

/** @param {Connection | null} c @returns {string | null} why the connection is not secure */
export function insecurity(c) {
  if (location.protocol !== "https:") return "This page was not loaded over HTTPS.";
  if (!window.isSecureContext) return "The browser does not treat this page as a secure context.";
  if (!c) return null;
  const host = location.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (!c.names.some((n) => n.toLowerCase() === host)) {
    return `The server certificate does not name "${host}", so the browser cannot have verified it. Use one of: ${c.names.join(", ")}.`;
  }
  return null;
}

/** The badge for the page header; fills itself in when the server has answered. */
export function securityBadge() {
  const badge = h("div", { class: "security", role: "status" }, h("span", { text: "…" }));
  api("GET", "/api/v1/connection").then((/** @type {Connection} */ c) => {
    const why = insecurity(c);
    if (why) {
      replace(badge, h("span", { class: "insecure", title: why, text: "⚠ Not secure" }));
      document.body.prepend(h("div", { class: "insecure-banner", role: "alert" }, h("strong", { text: "Not secure: " }), why));
      return;
    }
    const expiry = c.days_left <= 30 ? ` · certificate expires in ${c.days_left} day${c.days_left === 1 ? "" : "s"}` : "";
    replace(badge, h("span", {
      class: c.days_left <= 7 ? "secure warn" : "secure",
      title: `Verified HTTPS connection.\nCertificate: ${c.subject}\nIssued by: ${c.issuer}\nValid until: ${c.not_after}\nSHA-256: ${c.fingerprint_sha256}`,
    }, h("img", { class: "padlock", src: "/assets/icons/lock.svg", alt: "", width: "14", height: "14" }), ` ${c.issuer}${expiry}`));
  }).catch(() => {
    const why = insecurity(null);
    replace(badge, why ? h("span", { class: "insecure", title: why, text: "⚠ Not secure" }) : h("span", { text: "" }));
  });
  return badge;
}
