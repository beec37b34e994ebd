// The client's only way to the server: JSON over fetch, same origin, the session cookie, the
// CSRF token on state-changing requests, errors as the API's {code, message}.

let csrfToken = /** @type {string | null} */ (null);
/** @type {((e: ApiError) => void) | null} */
let onSessionEnd = null;

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @param {string | null} token */
export function setCsrf(token) {
  csrfToken = token;
}

/** @type {(() => void) | null} */
let onActivity = null;

/** Called after each request that counts as activity for the idle timeout. */
export function whenActive(/** @type {() => void} */ f) {
  onActivity = f;
}

/** Called when a request finds the session gone (expired, signed out elsewhere). */
export function whenSessionEnds(/** @type {(e: ApiError) => void} */ f) {
  onSessionEnd = f;
}

/**
 * @param {string} method
 * @param {string} path API path, e.g. `/api/v1/cameras`
 * @param {any} [body] JSON body
 * @param {{signal?: AbortSignal, raw?: boolean}} [opts] `raw` returns the Response
 * @returns {Promise<any>}
 */
export async function api(method, path, body, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "the server cannot be reached; check the network and try again");
  }
  if (!res.ok) {
    let code = "http_" + res.status;
    let message = `the server answered ${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && typeof j.code === "string") code = j.code;
      if (j && typeof j.message === "string") message = j.message;
    } catch (_) { /* not JSON */ }
    const err = new ApiError(res.status, code, message);
    if (res.status === 401 && path !== "/api/v1/session" && onSessionEnd) onSessionEnd(err);
    throw err;
  }
  // Every authenticated request but the session poll resets the server's idle timer.
  if (!(method === "GET" && path === "/api/v1/session") && onActivity) onActivity();
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/** Path segment for a camera or user name (names may hold any characters). */
export function seg(/** @type {string} */ name) {
  return encodeURIComponent(name);
}
