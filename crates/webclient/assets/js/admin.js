// Administration (admins only; the API refuses everyone else as well): cameras, users, API
// tokens, certificates, intrusion detection, settings; and the audit log (admins, auditors).

import { api, seg } from "./api.js";
import { h, replace, field, dialog, toast, table, msg } from "./dom.js";
import { download } from "./evidence.js";
import { clock, local } from "./time.js";

const SECTIONS = {
  cameras: "Cameras",
  users: "Users",
  tokens: "API tokens",
  certificates: "Certificates",
  ids: "Intrusion detection",
  settings: "Settings",
};

/** What a recorder state means, for the ones whose name does not say it. */
const STATE_HELP = {
  "not running": "No server has reported this stream in the last 10 seconds.",
  live: "Live view only: frames go to viewers, nothing is stored.",
  disabled: "Recording is switched off for this camera.",
};

/**
 * A stream's state with its reason and last frame (the API's status).
 * @param {{state: string, last_error?: string | null, last_frame?: string | null}} s
 */
function statusCell(s) {
  const t = Date.parse(s.last_frame || "");
  return h("div", { class: "status" },
    h("span", { class: `state state-${s.state.replace(/\s/g, "-")}`, title: STATE_HELP[/** @type {keyof STATE_HELP} */ (s.state)] || "", text: s.state }),
    s.last_error ? h("div", { class: "reason", text: s.last_error }) : null,
    Number.isFinite(t) ? h("div", { class: "hint", text: `last frame ${new Date(t).toDateString() === new Date().toDateString() ? clock(t * 1000).slice(0, 8) : local(t * 1000)}` }) : null);
}

/**
 * Where a stream comes from: its URL and whether credentials are stored (never the password).
 * @param {string} which @param {{url?: string, username?: string | null, has_password: boolean}} s
 */
function streamCell(which, s) {
  const creds = s.username ? `user ${s.username}${s.has_password ? ", password stored" : ", no password"}` : s.has_password ? "password stored" : "no credentials";
  return h("div", { class: "stream" },
    h("span", { class: "stream-kind", text: which }),
    s.url ? h("div", { class: "url", text: s.url }) : null,
    h("div", { class: "hint", text: creds }));
}

/** @param {{encrypted: boolean, summary: string} | undefined} link */
function linkCell(link) {
  return link ? h("span", { class: link.encrypted ? "ok" : "warn", title: link.summary, text: link.encrypted ? "encrypted" : "RTSP in clear" }) : "";
}

/** The video columns of a stream: codec and size, fps, kbit/s, stored.
 * @param {any} status @param {number} bytes @param {boolean} [stored] whether the stream is recorded */
function videoCells(status, bytes, stored = true) {
  return [
    [status.codec, status.resolution].filter(Boolean).join(" "),
    status.fps != null ? status.fps.toFixed(1) : "",
    status.bitrate_bps != null ? String(Math.round(status.bitrate_bps / 1000)) : "",
    !stored && bytes === 0 ? "—" : `${(bytes / 1048576).toFixed(1)} MiB`,
  ];
}

/** A button of a table row; `key` finds it again after the table is rebuilt (focus).
 * @param {string} key @param {string} text @param {string} label @param {() => void} onclick @param {string} [cls] */
function rowButton(key, text, label, onclick, cls) {
  return h("button", { type: "button", class: cls, dataset: { key }, "aria-label": label, onclick, text });
}

/** The secondary stream's fields of a form (add camera, set the secondary stream).
 * @param {{url?: string, username?: string | null, has_password: boolean, mode: string} | null} current
 * @param {boolean} required the URL must be given (not when it is optional, adding a camera) */
function secondaryFields(current, required) {
  const mode = h("select", { name: "secondary_mode" },
    [["live", "Live view only (not stored)"], ["recorded", "Recorded and signed, like the main stream"]].map(([v, t]) => h("option", { value: v, selected: current?.mode === v, text: t })));
  return [
    field("Secondary RTSP URL", h("input", { name: "secondary_url", required, value: current?.url || "", placeholder: "rtsp://10.0.1.20:554/stream2" }), "Usually a lower resolution: the live grid plays it, full screen the main stream. Without credentials."),
    field("Secondary user name", h("input", { name: "secondary_username", value: current?.username || "", autocomplete: "off" })),
    field("Secondary password", h("input", { name: "secondary_password", type: "password", autocomplete: "new-password" }),
      current?.has_password ? "A password is stored: enter a new one to replace it." : "Stored encrypted; never shown again."),
    current?.has_password ? h("label", { class: "check" }, h("input", { type: "checkbox", name: "secondary_keep", checked: true }), "Otherwise keep the stored password (same host and user name only)") : null,
    field("Secondary stream mode", mode),
  ];
}

/** The API's `secondary` object from a form's values. @param {Record<string, string>} v */
function secondaryBody(v) {
  const keep = v.secondary_keep === "on" && !v.secondary_password;
  return {
    url: v.secondary_url,
    username: v.secondary_username || undefined,
    password: v.secondary_password || undefined,
    mode: v.secondary_mode || "live",
    keep_password: keep || undefined,
  };
}


/**
 * Runs an action and reports its outcome.
 * @param {() => Promise<any>} f
 * @param {string} ok
 * @param {() => void} [after]
 */
async function act(f, ok, after) {
  try {
    await f();
    toast(ok);
    after?.();
  } catch (e) {
    toast(msg(e), "error");
  }
}

/** @param {string} question @returns {Promise<boolean>} */
function confirm(question) {
  return dialog("Please confirm", (close) => [
    h("p", { text: question }),
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => close(false), text: "Cancel" }),
      h("button", { type: "button", class: "danger", onclick: () => close(true), text: "Yes, do it" })),
  ]).then((v) => v === true);
}

/**
 * A form in a dialog; `submit` gets the form's named values and throws to show an error.
 * @param {string} title
 * @param {(HTMLElement | null)[]} fields
 * @param {(values: Record<string, string>) => Promise<any>} submit
 * @param {string} [action] the submit button's text (default: the title)
 */
function formDialog(title, fields, submit, action = title) {
  const err = h("p", { class: "error", role: "alert" });
  return dialog(title, (close) => h("form", {
    onsubmit: async (/** @type {Event} */ ev) => {
      ev.preventDefault();
      const values = /** @type {Record<string, string>} */ (Object.fromEntries(new FormData(/** @type {HTMLFormElement} */ (ev.target)).entries()));
      try { close(await submit(values) ?? true); } catch (e) { err.textContent = msg(e); }
    },
  }, fields, err, h("div", { class: "actions" },
    h("button", { type: "button", onclick: () => close(null), text: "Cancel" }),
    h("button", { type: "submit", class: "primary", text: action }))));
}

/**
 * Runs a long server call behind a dialog that says what is happening and for how long (the
 * call cannot be cancelled: the server finishes it either way). Resolves with the call's
 * result; rejects with its error.
 * @template T
 * @param {string} title
 * @param {string} text
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
function busy(title, text, work) {
  const started = Date.now();
  const elapsed = h("span", { class: "elapsed", text: "0 s" });
  /** @type {any} */
  let outcome = null;
  return dialog(title, (close) => {
    const timer = setInterval(() => { elapsed.textContent = `${Math.round((Date.now() - started) / 1000)} s`; }, 1000);
    work().then((v) => { outcome = { v }; }, (e) => { outcome = { e }; }).finally(() => { clearInterval(timer); close(true); });
    return h("div", { class: "busy", role: "status", "aria-live": "polite" },
      h("span", { class: "spinner", "aria-hidden": "true" }), h("p", { text }), h("p", { class: "muted" }, "Elapsed: ", elapsed));
  }).then(() => {
    if (outcome && "e" in outcome) throw outcome.e;
    return outcome?.v;
  });
}

/** What a rotation result means, for people. */
const ROTATION = {
  rotated: "new password set and proven",
  kept_old: "kept its old password",
  not_rotatable: "cannot be rotated",
  failed: "failed",
};

/**
 * Shows a rotation report: counts, then one row per camera with its result and reason.
 * @param {any} report
 */
function rotationReport(report) {
  /** @type {any[]} */
  /** @param {any} c */
  const order = (c) => (c.result === "not_rotatable" ? 1 : 0);
  const cams = [...report.cameras].sort((a, b) => order(a) - order(b));
  const rotated = cams.filter((c) => c.result === "rotated").length;
  const fixed = cams.filter((c) => c.result === "not_rotatable").length;
  const tried = cams.length - fixed;
  return dialog("Password rotation", (close) => [
    h("p", { class: "summary", text: `${rotated} of ${tried} camera${tried === 1 ? "" : "s"} got a new password.${fixed ? ` ${fixed} cannot be rotated by Vigil (listed last, with why).` : ""} A camera that was not rotated keeps a password that works; no password is shown or logged.` }),
    table("Password rotation", ["Camera", "Result", "Why"], cams.map((c) => [
      h("strong", { text: c.camera }),
      h("span", { class: c.result === "rotated" ? "ok" : "warn", text: /** @type {any} */ (ROTATION)[c.result] || c.result }),
      c.reason || "—",
    ]), "rotation"),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => close(true), text: "Done" })),
  ]);
}

/** A checkbox with its label. @param {string} name @param {string} text @param {boolean} [checked] */
const checkbox = (name, text, checked = false) => h("label", { class: "check" }, h("input", { type: "checkbox", name, checked }), text);

/**
 * A camera name suggested from what a device says it is (the admin edits it).
 * @param {{name?: string | null, model?: string | null, address: string}} d
 */
function suggestedName(d) {
  const base = (d.name || d.model || `camera-${d.address}`).toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
  return (base || "camera").slice(0, 64);
}

/**
 * The devices a discovery found: what each says it is, whether it offers HTTPS, and "Add" for
 * the ones not added yet. Resolves with the device to add, or null.
 * @param {any[]} found
 * @param {string} where what was asked (for the sentence above the table)
 */
function discoveryResults(found, where) {
  return dialog("ONVIF cameras found", (close) => [
    h("p", { class: "summary", text: found.length
      ? `${found.length} device${found.length === 1 ? "" : "s"} answered ${where}. Devices are added over HTTPS, verified against this installation's trust store; a device that offers only HTTP can be added only by saying so.`
      : `No ONVIF device answered ${where}. Check the subnet, that the cameras have ONVIF and WS-Discovery on, and that UDP 3702 reaches them.` }),
    found.length ? table("ONVIF cameras found", ["Address", "Device", "Serial", "Firmware", "Link", ""], found.map((d) => ({
      attrs: { class: "device-row", dataset: { address: d.address } },
      cells: [
        h("strong", { text: d.address }),
        h("div", {}, h("div", { text: [d.manufacturer, d.model].filter(Boolean).join(" ") || "unknown" }),
          h("div", { class: "hint", text: d.identity === "device" ? "as the device says" : "from its discovery answer (it wants credentials for more)" })),
        d.serial || "—",
        d.firmware || "—",
        h("span", { class: d.https ? "ok" : "warn", text: d.https ? "HTTPS" : "HTTP only" }),
        d.added_as ? h("span", { class: "hint", text: `added as ${d.added_as}` })
          : rowButton(`add-device:${d.address}`, "Add", `Add the camera at ${d.address}`, () => close(d), "primary"),
      ],
    })), "devices") : null,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => close(null), text: "Close" })),
  ]);
}

/**
 * Adds a camera from its ONVIF device: the form, then the server reads its profiles. Resolves
 * with the API's answer (camera, streams chosen, identity), or null when cancelled.
 * @param {{onvif_url?: string, https?: boolean, name?: string | null, model?: string | null, address?: string} | null} d
 */
function addOnvifCamera(d) {
  const plain = d ? !d.https && /^http:/.test(d.onvif_url || "") : false;
  return formDialog(d ? `Add the camera at ${d.address}` : "Add a camera by ONVIF", [
    field("Name", input("name", { required: true, maxlength: "64", value: d && d.address ? suggestedName(/** @type {any} */ (d)) : "" }), "Letters, digits, - and _; used in URLs and exports."),
    field("ONVIF address", input("address", { required: true, value: d?.onvif_url || "", placeholder: "https://10.0.1.20" }), "The device service; the streams are read from its profiles (the biggest is recorded, a smaller one feeds the live grid)."),
    field("User name", input("username", { autocomplete: "off" })),
    field("Password", input("password", { type: "password", autocomplete: "new-password" }), "Stored encrypted; never shown again. Rotate it later from this page."),
    h("details", { class: "more", open: plain },
      h("summary", { text: "Certificate and plain HTTP" }),
      field("Accept this certificate (SHA-256)", input("fingerprint", { autocomplete: "off", placeholder: "AB:CD:…" }),
        "Only for a camera whose certificate no trusted CA issued: paste the fingerprint Vigil showed when it refused the camera, after comparing it with the one the camera itself shows."),
      checkbox("allow_http", "Allow plain HTTP: nothing on this link is encrypted or verified, and the camera is flagged as such everywhere", false)),
  ], (v) => api("POST", "/api/v1/onvif/cameras", {
    name: v.name, address: v.address, username: v.username || undefined, password: v.password || undefined,
    fingerprint: v.fingerprint || undefined, allow_http: v.allow_http === "on",
  }), "Add camera");
}

/** What an added ONVIF camera records and shows, in one sentence. @param {any} r */
function addedSentence(r) {
  /** @param {any} s */
  const size = (s) => `${s.encoding} ${s.width}x${s.height}`;
  return `${r.camera.name} added: records ${size(r.main)}${r.secondary ? `, the live grid plays ${size(r.secondary)}` : ""}; serial ${r.identity.serial || "unknown"}${r.identity.certificate ? "" : ", over plain HTTP"}.`;
}

/** @param {string} name @param {Record<string, any>} [attrs] */
const input = (name, attrs = {}) => h("input", { name, ...attrs });
/** @param {string} name @param {string[]} options */
const select = (name, options) => h("select", { name }, options.map((o) => h("option", { value: o, text: o })));

export class AdminView {
  /** @param {{name: string}} session @param {string} section */
  constructor(session, section) {
    this.session = session;
    this.section = section in SECTIONS ? section : "cameras";
    this.body = h("div", { class: "admin-body" });
    this.el = h("div", { class: "admin" },
      h("nav", { class: "subnav", "aria-label": "Administration" },
        Object.entries(SECTIONS).map(([id, label]) => h("a", { href: `#/admin/${id}`, "aria-current": id === this.section ? "page" : false, text: label }))),
      this.body);
    this.refresh();
  }

  refresh() {
    const f = {
      cameras: () => this.cameras(), users: () => this.users(), tokens: () => this.tokens(),
      certificates: () => this.certificates(), ids: () => this.ids(), settings: () => this.settings(),
    }[this.section];
    // The keyboard stays where it was: on the same row's button after the table is rebuilt.
    const key = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.key;
    f().then(() => {
      if (!key) return;
      const again = /** @type {HTMLElement | null} */ ([...this.body.querySelectorAll("[data-key]")].find((el) => /** @type {HTMLElement} */ (el).dataset.key === key) || null);
      (again || this.body.querySelector("h1"))?.focus();
    }).catch((e) => replace(this.body, h("p", { class: "error", text: msg(e) })));
  }

  async cameras() {
    /** @type {any[]} */
    const cams = await api("GET", "/api/v1/cameras");
    const add = () => formDialog("Add camera", [
      field("Name", input("name", { required: true, maxlength: "64" }), "Letters, digits, - and _; used in URLs and exports."),
      field("RTSP URL", input("url", { required: true, placeholder: "rtsp://10.0.1.20:554/stream1" }), "Without credentials: give them below."),
      field("User name", input("username", { autocomplete: "off" })),
      field("Password", input("password", { type: "password", autocomplete: "new-password" }), "Stored encrypted; never shown again."),
      h("details", { class: "more" }, h("summary", { text: "Secondary stream (optional)" }), secondaryFields(null, false)),
    ], (v) => api("POST", "/api/v1/cameras", {
      name: v.name, url: v.url, username: v.username || undefined, password: v.password || undefined,
      secondary: v.secondary_url ? secondaryBody(v) : undefined,
    })).then((r) => { if (r) { toast("Camera added."); this.refresh(); } });
    /** @param {any} c */
    const setSecondary = (c) => formDialog(c.secondary ? `Secondary stream of ${c.name}` : `Add a secondary stream to ${c.name}`, secondaryFields(c.secondary, true),
      (v) => api("PATCH", `/api/v1/cameras/${seg(c.name)}`, { secondary: secondaryBody(v) }), c.secondary ? "Save" : "Add secondary stream")
      .then((r) => { if (r) { toast(c.secondary ? "Secondary stream replaced." : "Secondary stream added."); this.refresh(); } });
    /** @param {any} c */
    const removeSecondary = async (c) => {
      if (await confirm(`Remove the secondary stream of "${c.name}"? The live grid then plays the main stream; recordings of the secondary stream are kept until retention removes them.`)) {
        act(() => api("PATCH", `/api/v1/cameras/${seg(c.name)}`, { secondary: null }), "Secondary stream removed.", () => this.refresh());
      }
    };
    /** @param {any} c */
    const retention = (c) => formDialog(`Retention of ${c.name}`, [
      field("Keep at most (days)", input("days", { type: "number", min: "1", value: c.max_age_secs != null ? String(Math.round(c.max_age_secs / 86400)) : "" }), "Empty: the installation default."),
      field("Keep at most (GiB)", input("gib", { type: "number", min: "1", value: c.max_bytes != null ? String(Math.round(c.max_bytes / 1073741824)) : "" }), "Empty: the installation default. Covers the secondary stream's recordings too."),
    ], (v) => api("PATCH", `/api/v1/cameras/${seg(c.name)}`, {
      max_age: v.days ? `${v.days}d` : null,
      max_bytes: v.gib ? Number(v.gib) * 1073741824 : null,
    }), "Save").then((r) => { if (r) { toast("Retention saved."); this.refresh(); } });
    /** @param {string[] | null} names the cameras, or null for every camera added by ONVIF */
    const rotate = async (names) => {
      const which = names ? `camera "${names[0]}"` : `each of the ${onvif.length} cameras added by ONVIF`;
      if (!await confirm(`Give ${which} a fresh random password? It is set on the camera over its verified HTTPS link and proven (ONVIF and RTSP) before it is kept; a camera where anything fails keeps its old password. Recording reconnects with the new password.`)) return;
      try {
        const report = await busy("Rotating passwords", `Setting and proving new passwords on ${names ? names[0] : `${onvif.length} cameras`} (a few at a time)…`,
          () => api("POST", "/api/v1/cameras/rotate-passwords", names ? { cameras: names } : { all: true }));
        await rotationReport(report);
      } catch (e) { toast(msg(e), "error"); }
      this.refresh();
    };
    /** @param {any} c */
    const installCertificate = async (c) => {
      if (!await confirm(`Give "${c.name}" a certificate from this installation's CA? The camera makes its own key and request, the CA signs it for ${new URL(c.device.onvif_url).hostname}, and the camera serves HTTPS with it. Recording continues.`)) return;
      try {
        const r = await busy("Installing a certificate", `Asking ${c.name} for a new key and certificate request (a camera may take up to a minute to make its key)…`,
          () => api("POST", `/api/v1/cameras/${seg(c.name)}/install-certificate`, {}));
        toast(`${c.name} now serves a certificate from this installation's CA, valid until ${new Date(r.not_after).toLocaleDateString()}.`);
      } catch (e) { toast(msg(e), "error"); }
      this.refresh();
    };
    /** @param {any} c */
    const acceptDevice = async (c) => {
      if (await confirm(`Accept the device now answering at ${c.device.onvif_url} as "${c.name}"? Do this only after replacing the camera on purpose; its identity is read with the camera's stored credentials and its refused streams start again.`)) {
        act(() => api("POST", `/api/v1/cameras/${seg(c.name)}/accept-device`, {}), "Device accepted.", () => this.refresh());
      }
    };
    /** @param {any} d a discovered device, or null to type its address */
    const addByOnvif = async (d) => {
      const r = await addOnvifCamera(d);
      if (r) { toast(addedSentence(r)); this.refresh(); }
    };
    const find = async () => {
      const found = await formDialog("Find ONVIF cameras", [
        field("Subnet", input("subnet", { placeholder: "192.168.10.0/24", autocomplete: "off" }), "Every address of this IPv4 subnet is asked (at most a /16): multicast does not cross routers. Empty: only this server's local network."),
        checkbox("multicast", "Also ask on this server's local network (multicast)", true),
        h("details", { class: "more" }, h("summary", { text: "Timing and port" }),
          field("Wait for answers (seconds)", input("wait", { type: "number", min: "1", max: "30", value: "3" })),
          field("WS-Discovery port", input("port", { type: "number", min: "1", max: "65535", value: "3702" }), "Cameras answer on 3702; change it only for a gateway that forwards another port.")),
      ], (v) => {
        const subnet = v.subnet.trim();
        if (!subnet && v.multicast !== "on") throw new Error("Give a subnet, or ask on the local network.");
        const where = [subnet ? `in ${subnet}` : "", v.multicast === "on" ? "on the local network" : ""].filter(Boolean).join(" and ");
        return busy("Finding cameras", `Asking for ONVIF devices ${where} (${v.wait || 3} s for answers, then each one for what it is)…`,
          () => api("POST", "/api/v1/onvif/discover", {
            subnet: subnet || undefined, multicast: v.multicast === "on",
            wait_seconds: Number(v.wait) || 3, port: Number(v.port) || undefined,
          })).then((list) => ({ list, where }));
      }, "Find");
      if (!found) return;
      const chosen = await discoveryResults(found.list, found.where);
      if (chosen) await addByOnvif(chosen);
    };
    const onvif = cams.filter((c) => c.device);
    /** @type {(any[] | {cells: any[], attrs: Record<string, any>})[]} */
    const rows = [];
    for (const c of cams) {
      const https = c.device?.onvif_url?.startsWith("https://");
      rows.push({
        attrs: { class: "camera-row", dataset: { camera: c.name } },
        cells: [
          h("strong", { text: c.name }),
          streamCell("main", c),
          statusCell(c.status),
          linkCell(c.link),
          ...videoCells(c.status, c.recorded_bytes),
          [c.max_age_secs != null ? `${Math.round(c.max_age_secs / 86400)} d` : "default age", c.max_bytes != null ? `${Math.round(c.max_bytes / 1073741824)} GiB` : "default size"].join(", "),
          h("span", { class: "row-actions" },
            rowButton(`enable:${c.name}`, c.enabled ? "Disable" : "Enable", `${c.enabled ? "Disable" : "Enable"} recording of ${c.name}`, () => act(() => api("PATCH", `/api/v1/cameras/${seg(c.name)}`, { enabled: !c.enabled }), c.enabled ? "Camera disabled." : "Camera enabled.", () => this.refresh())),
            rowButton(`retention:${c.name}`, "Retention", `Retention of ${c.name}`, () => retention(c)),
            c.secondary ? null : rowButton(`secondary:${c.name}`, "Add secondary", `Add a secondary stream to ${c.name}`, () => setSecondary(c)),
            c.device?.check === "mismatch" ? rowButton(`accept:${c.name}`, "Accept device", `Accept the device now answering as ${c.name}`, () => acceptDevice(c), "danger") : null,
            https ? rowButton(`password:${c.name}`, "New password", `Give ${c.name} a fresh password`, () => rotate([c.name])) : null,
            https ? rowButton(`certificate:${c.name}`, "Certificate", `Install a certificate from this installation's CA on ${c.name}`, () => installCertificate(c)) : null,
            rowButton(`remove:${c.name}`, "Remove", `Remove camera ${c.name}`, async () => { if (await confirm(`Remove camera "${c.name}"? Its recorded video is kept until retention removes it.`)) act(() => api("DELETE", `/api/v1/cameras/${seg(c.name)}`), "Camera removed.", () => this.refresh()); }, "danger")),
        ],
      });
      const sec = c.secondary;
      if (sec) {
        rows.push({
          attrs: { class: "secondary-row", dataset: { camera: c.name, mode: sec.mode } },
          cells: [
            h("span", { class: "sub-mark" }, h("span", { "aria-hidden": "true", text: "↳" }), h("span", { class: "sr-only", text: `${c.name}, secondary stream` })),
            streamCell(sec.mode === "recorded" ? "secondary · recorded" : "secondary · live only", sec),
            statusCell(sec.status),
            linkCell(sec.link),
            ...videoCells(sec.status, sec.recorded_bytes, sec.mode === "recorded"),
            sec.mode === "recorded" ? "with the main stream" : "not stored",
            h("span", { class: "row-actions" },
              rowButton(`secondary:${c.name}`, "Edit", `Edit the secondary stream of ${c.name}`, () => setSecondary(c)),
              rowButton(`remove-secondary:${c.name}`, "Remove", `Remove the secondary stream of ${c.name}`, () => removeSecondary(c), "danger")),
          ],
        });
      }
    }
    replace(this.body,
      h("div", { class: "toolbar" }, h("h1", { text: "Cameras", tabindex: "-1" }), h("span", { class: "spacer" }),
        // No automatic refresh: polling would keep an idle session alive.
        h("button", { type: "button", dataset: { key: "refresh" }, onclick: () => this.refresh(), text: "Refresh", title: "Show the current status" }),
        onvif.length ? h("button", { type: "button", dataset: { key: "rotate" }, onclick: () => rotate(null), text: "Rotate passwords", title: "Give every camera added by ONVIF a fresh random password" }) : null,
        h("button", { type: "button", dataset: { key: "find" }, onclick: find, text: "Find cameras", title: "Find ONVIF cameras by WS-Discovery and add them from their profiles" }),
        h("button", { type: "button", dataset: { key: "add-onvif" }, onclick: () => addByOnvif(null), text: "Add by ONVIF", title: "Add a camera from its ONVIF address" }),
        h("button", { type: "button", class: "primary", onclick: add, text: "Add camera", title: "Add a camera by its RTSP URL" })),
      table("Cameras", ["Camera", "Stream", "State", "Link", "Video", "fps", "kbit/s", "Stored", "Retention", ""], rows, "cameras"));
  }

  async users() {
    /** @type {any[]} */
    const users = await api("GET", "/api/v1/users");
    const add = () => formDialog("Add user", [
      field("User name", input("username", { required: true, autocomplete: "off" })),
      field("Role", select("role", ["viewer", "operator", "auditor", "admin"])),
      field("Cameras", input("cameras", { placeholder: "all" }), "Comma-separated camera names; empty for all cameras."),
      field("Password", input("password", { type: "password", autocomplete: "new-password", minlength: "12" }), "Empty: a strong password is generated and shown once."),
    ], async (v) => {
      const r = await api("POST", "/api/v1/users", { username: v.username, role: v.role, cameras: v.cameras ? v.cameras.split(",").map((s) => s.trim()).filter(Boolean) : undefined, password: v.password || undefined });
      if (r.generated_password) await dialog("User added", (close) => [h("p", { text: `The generated password of ${r.user.username} (shown once; hand it over securely):` }), h("code", { class: "secret", text: r.generated_password }), h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => close(true), text: "Done" }))]);
      return r;
    }).then((r) => { if (r) { toast("User added."); this.refresh(); } });
    replace(this.body,
      h("div", { class: "toolbar" }, h("h1", { text: "Users" }), h("span", { class: "spacer" }), h("button", { type: "button", class: "primary", onclick: add, text: "Add user" })),
      table("Users", ["User", "Role", "Cameras", "TOTP", "State", "Sessions", "Password changed", ""], users.map((u) => [
        u.username, u.role, u.cameras ? u.cameras.join(", ") : "all", u.totp_enabled ? "enrolled" : "—", u.disabled ? "disabled" : "active", String(u.active_sessions), u.password_changed,
        h("span", { class: "row-actions" },
          h("button", { type: "button", onclick: () => formDialog("Change role", [
            field("Role", select("role", ["viewer", "operator", "auditor", "admin"])),
            field("Cameras", input("cameras", { value: u.cameras ? u.cameras.join(", ") : "" }), "Comma-separated; empty for all cameras."),
          ], (v) => api("PATCH", `/api/v1/users/${seg(u.username)}`, { role: v.role, cameras: v.cameras ? v.cameras.split(",").map((s) => s.trim()).filter(Boolean) : null })).then((r) => { if (r) { toast("User changed."); this.refresh(); } }), text: "Role" }),
          h("button", { type: "button", onclick: () => act(() => api("PATCH", `/api/v1/users/${seg(u.username)}`, { disabled: !u.disabled }), u.disabled ? "User enabled." : "User disabled; their sessions ended.", () => this.refresh()), text: u.disabled ? "Enable" : "Disable" }),
          h("button", { type: "button", onclick: async () => {
            const r = await api("PUT", `/api/v1/users/${seg(u.username)}/password`, {}).catch((e) => { toast(msg(e), "error"); return null; });
            if (r?.generated_password) await dialog("New password", (close) => [h("p", { text: `The new password of ${u.username} (shown once):` }), h("code", { class: "secret", text: r.generated_password }), h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => close(true), text: "Done" }))]);
            this.refresh();
          }, text: "Reset password" }),
          u.totp_enabled ? h("button", { type: "button", onclick: async () => { if (await confirm(`Remove the second factor of ${u.username}?`)) act(() => api("DELETE", `/api/v1/users/${seg(u.username)}/totp`), "Second factor removed.", () => this.refresh()); }, text: "Remove TOTP" }) : null,
          u.username === this.session.name ? h("button", { type: "button", onclick: () => this.enrolTotp(), text: u.totp_enabled ? "Re-enrol TOTP" : "Enrol TOTP" }) : null,
          u.username !== this.session.name ? h("button", { type: "button", class: "danger", onclick: async () => { if (await confirm(`Delete user "${u.username}"?`)) act(() => api("DELETE", `/api/v1/users/${seg(u.username)}`), "User deleted.", () => this.refresh()); }, text: "Delete" }) : null),
      ])));
  }

  async enrolTotp() {
    const begun = await formDialog("Start TOTP enrolment", [field("Your current password", input("current_password", { type: "password", required: true, autocomplete: "current-password" }))],
      (v) => api("POST", "/api/v1/account/totp", { current_password: v.current_password }));
    if (!begun || begun === true) return;
    await formDialog("Confirm TOTP", [
      h("p", { text: "Scan the QR code with your authenticator app, then enter the code it shows." }),
      h("img", { class: "qr", src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(begun.qr_svg)}`, alt: "QR code of the TOTP secret" }),
      h("p", {}, "Or enter this secret by hand: ", h("code", { class: "secret", text: begun.secret_base32 })),
      field("Code", input("code", { required: true, inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6", autocomplete: "one-time-code" })),
    ], (v) => api("POST", "/api/v1/account/totp/confirm", { code: v.code })).then((r) => { if (r) { toast("Second factor enrolled."); this.refresh(); } });
  }

  async tokens() {
    /** @type {any[]} */
    const tokens = await api("GET", "/api/v1/tokens");
    const add = () => formDialog("Create token", [
      field("Name", input("name", { required: true }), "What the token is for, e.g. the integration's name."),
      field("Role", select("role", ["viewer", "operator", "auditor", "admin"])),
      field("Cameras", input("cameras"), "Comma-separated; empty for all cameras."),
      field("Expires in", input("expires_in", { placeholder: "90d" }), "Empty: never (not recommended)."),
    ], async (v) => {
      const r = await api("POST", "/api/v1/tokens", { name: v.name, role: v.role, cameras: v.cameras ? v.cameras.split(",").map((s) => s.trim()).filter(Boolean) : undefined, expires_in: v.expires_in || undefined });
      await dialog("Token created", (close) => [h("p", { text: "Copy the token now: it is shown once and stored only as a hash." }), h("code", { class: "secret", text: r.token }), h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => close(true), text: "Done" }))]);
      return r;
    }).then((r) => { if (r) this.refresh(); });
    replace(this.body,
      h("div", { class: "toolbar" }, h("h1", { text: "API tokens" }), h("span", { class: "spacer" }), h("button", { type: "button", class: "primary", onclick: add, text: "Create token" })),
      table("API tokens", ["Name", "Role", "Cameras", "State", "Created", "Expires", "Last used", ""], tokens.map((t) => [
        t.name, t.role, t.cameras ? t.cameras.join(", ") : "all", t.state, `${t.created} by ${t.created_by}`, t.expires || "never", t.last_used || "never",
        t.state === "active" ? h("button", { type: "button", class: "danger", onclick: async () => { if (await confirm(`Revoke token "${t.name}"? Integrations using it stop working at once.`)) act(() => api("DELETE", `/api/v1/tokens/${seg(t.id)}`), "Token revoked.", () => this.refresh()); }, text: "Revoke" }) : "",
      ])));
  }

  async certificates() {
    const s = await api("GET", "/api/v1/certificates");
    /** @param {number} d */
    const expiry = (d) => h("span", { class: d <= 7 ? "bad" : d <= 30 ? "warn" : "ok", text: d <= 0 ? "expired" : `${d} days` });
    replace(this.body,
      h("div", { class: "toolbar" }, h("h1", { text: "Certificates" }), h("span", { class: "spacer" }),
        h("button", { type: "button", onclick: () => download("/api/v1/certificates/ca.pem", "vigil-ca.pem", () => {}).catch((e) => toast(msg(e), "error")), text: "Download CA certificate" }),
        h("button", { type: "button", onclick: () => act(() => api("POST", "/api/v1/certificates/renew"), "Server certificate renewed; new connections use it.", () => this.refresh()), text: "Renew server certificate" }),
        h("button", { type: "button", onclick: () => this.importCert(), text: "Import certificate" }),
        h("button", { type: "button", onclick: () => this.csr(), text: "Create CSR" })),
      h("p", { text: `Installation ${s.installation_id}; server names: ${s.hostnames.join(", ")}; serving the ${s.active_source} certificate.` }),
      s.certificates.some((/** @type {any} */ c) => c.days_left <= 30) ? h("p", { class: "warning", role: "alert", text: "A certificate expires within 30 days: renew it or import a new one." }) : null,
      table("Certificates", ["Role", "Subject", "Issuer", "Names", "Valid until", "Expires in", "Source", "In use"], s.certificates.map((/** @type {any} */ c) => [
        c.role, c.subject, c.issuer, c.sans.join(", "), c.not_after, expiry(c.days_left), c.source, c.in_use ? "yes" : "",
      ])));
  }

  importCert() {
    formDialog("Import certificate", [
      field("Certificate chain (PEM)", h("textarea", { name: "certificate_pem", rows: "6", required: true })),
      field("Private key (PEM)", h("textarea", { name: "key_pem", rows: "6", required: true })),
      field("Key passphrase", input("passphrase", { type: "password", autocomplete: "off" }), "Only for an encrypted key."),
    ], (v) => api("POST", "/api/v1/certificates/import", { certificate_pem: v.certificate_pem, key_pem: v.key_pem, passphrase: v.passphrase || undefined }))
      .then((r) => { if (r) { toast("Certificate imported; new connections use it."); this.refresh(); } });
  }

  csr() {
    formDialog("Create CSR", [
      field("Common name", input("common_name", { required: true })),
      field("Names (SANs)", input("sans", { required: true }), "Comma-separated host names and addresses clients use."),
    ], async (v) => {
      const r = await api("POST", "/api/v1/certificates/csr", { common_name: v.common_name, sans: v.sans.split(",").map((s) => s.trim()).filter(Boolean) });
      await dialog("Certificate signing request", (close) => [h("p", { text: "Send this CSR to your CA, then install the certificate it returns." }), h("pre", { class: "pem", text: r.csr_pem }), h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => close(true), text: "Done" }))]);
      return r;
    }).then((r) => { if (r) this.refresh(); });
  }

  async ids() {
    const s = await api("GET", "/api/v1/ids");
    replace(this.body,
      h("h1", { text: "Intrusion detection" }),
      h("p", { text: `Alert after ${s.settings.notification_threshold} failed sign-ins within ${s.settings.timeout_secs} s; block: ${s.settings.block}${s.settings.block_secs ? ` for ${s.settings.block_secs} s` : ""}; never blocked: ${s.settings.allow_list.join(", ") || "nobody"}. Change these under Settings.` }),
      h("h2", { text: "Blocked addresses" }),
      table("Blocked addresses", ["Address", "Since", "Until", "Failures", ""], s.blocked.map((/** @type {any} */ b) => [
        b.address, b.since, b.until || "until unblocked", String(b.failures),
        h("button", { type: "button", onclick: () => act(() => api("DELETE", `/api/v1/ids/blocks/${seg(b.address)}`), `${b.address} unblocked.`, () => this.refresh()), text: "Unblock" }),
      ])),
      h("h2", { text: "Watched addresses" }),
      table("Watched addresses", ["Address", "Failures", "First", "Last"], s.watched.map((/** @type {any} */ w) => [w.address, String(w.failures), w.first, w.last])),
      h("h2", { text: "Sign-in attempts" }),
      table("Sign-in attempts", ["Address", "User", "Result", "Count", "First", "Last"], s.access_log.map((/** @type {any} */ a) => [a.source, a.username, a.success ? "success" : "failed", String(a.count), a.first, a.last])));
  }

  async settings() {
    const s = await api("GET", "/api/v1/settings");
    const editor = /** @type {HTMLTextAreaElement} */ (h("textarea", { class: "json", rows: "22", spellcheck: "false", "aria-label": "Settings (JSON)" }));
    editor.value = JSON.stringify(s.pending || s.saved, null, 2);
    const stage = async () => {
      let next;
      try { next = JSON.parse(editor.value); } catch (e) { toast(`Not valid JSON: ${msg(e)}`, "error"); return; }
      act(() => api("PATCH", "/api/v1/settings", mergePatch(s.saved, next)), "Changes staged: review them, then Apply.", () => this.refresh());
    };
    replace(this.body,
      h("h1", { text: "Settings" }),
      h("p", { text: s.message }),
      s.changes.length ? h("div", { class: "pending" }, h("h2", { text: "Staged changes" }),
        table("Staged changes", ["Setting", "Saved", "Staged"], s.changes.map((/** @type {any} */ c) => [c.setting || c.path || c.name, JSON.stringify(c.before ?? c.from), JSON.stringify(c.after ?? c.to)])),
        s.listeners_restart ? h("p", { class: "warning", text: "Applying rebinds listeners. A change that would leave this server unreachable is refused before anything is applied." }) : null,
        s.certificate_reissue ? h("p", { class: "warning", text: "Applying reissues the server certificate with the new names." }) : null) : null,
      editor,
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: stage, text: "Stage changes" }),
        h("button", { type: "button", class: "primary", disabled: !s.pending, onclick: () => act(() => api("POST", "/api/v1/settings/apply"), "Settings applied and saved.", () => this.refresh()), text: "Apply" }),
        h("button", { type: "button", disabled: !s.pending, onclick: () => act(() => api("POST", "/api/v1/settings/restore"), "Staged changes discarded.", () => this.refresh()), text: "Restore" }),
        h("button", { type: "button", class: "danger", onclick: async () => { if (await confirm("Stage the factory defaults? Nothing changes until you Apply.")) act(() => api("POST", "/api/v1/settings/factory"), "Factory defaults staged.", () => this.refresh()); }, text: "Factory defaults" })));
  }

  stop() {}
}

/**
 * The JSON merge patch (RFC 7396) that turns `a` into `b`.
 * @param {any} a @param {any} b @returns {any}
 */
export function mergePatch(a, b) {
  if (typeof a !== "object" || a === null || Array.isArray(a) || typeof b !== "object" || b === null || Array.isArray(b)) return b;
  /** @type {Record<string, any>} */
  const out = {};
  for (const k of Object.keys(a)) if (!(k in b)) out[k] = null;
  for (const [k, v] of Object.entries(b)) {
    if (JSON.stringify(a[k]) !== JSON.stringify(v)) out[k] = mergePatch(a[k], v);
  }
  return out;
}

export class AuditView {
  /** @param {{role: string}} _session */
  constructor(_session) {
    this.list = h("div", { class: "audit-list" });
    this.chain = h("p", { class: "chain", role: "status" });
    const kind = input("kind", { placeholder: "any kind", "aria-label": "Kind" });
    const user = input("user", { placeholder: "any user", "aria-label": "User" });
    const from = input("from", { placeholder: "-1d", "aria-label": "From" });
    this.form = h("form", { class: "filters", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.load(); } },
      kind, user, from, h("button", { type: "submit", text: "Filter" }),
      h("button", { type: "button", onclick: () => this.verify(), text: "Verify chain" }),
      h("button", { type: "button", onclick: () => download(`/api/v1/audit/export?${this.query()}`, "audit.jsonl", () => {}).catch((e) => toast(msg(e), "error")), text: "Export" }));
    this.el = h("div", { class: "audit" }, h("h1", { text: "Audit log" }), this.form, this.chain, this.list);
    this.load();
  }

  query() {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(/** @type {HTMLFormElement} */ (this.form)).entries()) if (v) p.set(k, String(v));
    p.set("limit", "500");
    return p.toString();
  }

  async load() {
    try {
      const page = await api("GET", `/api/v1/audit?${this.query()}`);
      replace(this.list, table("Audit entries", ["#", "Time (UTC)", "Kind", "User", "Address", "Detail"], page.entries.map((/** @type {any} */ e) => [
        String(e.seq), e.time_utc, e.kind, e.user || "", e.source || "", h("code", { text: JSON.stringify(e.detail) }),
      ])), page.truncated ? h("p", { class: "hint", text: "More entries match: narrow the filter." }) : null);
    } catch (e) {
      replace(this.list, h("p", { class: "error", text: msg(e) }));
    }
  }

  async verify() {
    try {
      const r = await api("GET", "/api/v1/audit/verify");
      this.chain.textContent = r.message;
      this.chain.className = r.status === "intact" || r.status === "ok" ? "chain ok" : "chain bad";
    } catch (e) {
      this.chain.textContent = msg(e);
    }
  }

  stop() {}
}
