// Times as the API writes them (RFC 3339 UTC, microseconds) and as people read them.

/** @param {number} us unix microseconds @returns {string} RFC 3339 with milliseconds, UTC */
export function iso(us) {
  return new Date(Math.floor(us / 1000)).toISOString();
}

/** Local date and time with seconds, for people. @param {number} us */
export function local(us) {
  const d = new Date(us / 1000);
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

/** Local time of day with milliseconds. @param {number} us */
export function clock(us) {
  const d = new Date(us / 1000);
  const p = (/** @type {number} */ n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** "3 h 12 min", "45 s". @param {number} secs */
export function span(secs) {
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.round((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.round((secs % 86400) / 3600)} h`;
}

/** Unix microseconds now. */
export function nowUs() {
  return Date.now() * 1000;
}
