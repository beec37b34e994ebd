// The sign-in page: user name, password and, when the account has one, the TOTP code.

import { api, ApiError } from "./api.js";
import { h, replace, field } from "./dom.js";
import { securityBadge } from "./security.js";

/**
 * @param {HTMLElement} app
 * @param {(session: any) => void} done
 * @param {string} [message]
 */
export function showLogin(app, done, message = "") {
  const user = /** @type {HTMLInputElement} */ (h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" }));
  const pass = /** @type {HTMLInputElement} */ (h("input", { name: "password", type: "password", autocomplete: "current-password", required: true }));
  const totp = /** @type {HTMLInputElement} */ (h("input", { name: "totp", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: "6" }));
  const totpField = field("Authenticator code", totp, "The 6-digit code from your authenticator app.");
  totpField.hidden = true;
  const status = h("p", { class: message ? "notice" : "error", role: "alert", text: message });
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "primary", text: "Sign in" }));
  const form = h("form", {
    class: "login", "aria-label": "Sign in",
    onsubmit: async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      submit.disabled = true;
      status.className = "error";
      status.textContent = "";
      try {
        const s = await api("POST", "/api/v1/session", {
          username: user.value,
          password: pass.value,
          totp: totpField.hidden || !totp.value ? undefined : totp.value,
        });
        pass.value = "";
        done(s);
      } catch (e) {
        if (e instanceof ApiError && e.code === "totp_required") {
          totpField.hidden = false;
          totp.focus();
          status.className = "notice";
          status.textContent = "Enter the code from your authenticator app.";
        } else if (e instanceof ApiError && e.code === "invalid_credentials") {
          status.textContent = totpField.hidden ? "Wrong user name or password." : "Wrong user name, password or code.";
          pass.value = "";
          pass.focus();
        } else if (e instanceof ApiError && e.code === "address_blocked") {
          status.textContent = "Too many failed sign-ins from this address: it is blocked for a while. An administrator can unblock it under Administration → Intrusion detection.";
        } else {
          status.textContent = e instanceof Error ? e.message : String(e);
        }
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("h1", {}, h("img", { src: "/assets/icon.svg", alt: "", width: "40", height: "40" }), "Vigil"),
  field("User name", user), field("Password", pass), totpField, status, submit, securityBadge());
  replace(app, h("div", { class: "login-page" }, form));
  user.focus();
}
