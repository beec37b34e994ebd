// The Chromium command-line flags every browser run here uses (the web client's scenarios,
// the player checks and bench/live): verified to run Debian's Chromium headless in containers
// without a GPU or network access.
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];
