// Digital zoom on a video: wheel or pinch to zoom at the pointer, drag to pan, double-click or
// "0" to reset. The video element is scaled inside its frame; the stream is not touched.

const MAX_SCALE = 8;

export class Zoom {
  /**
   * @param {HTMLElement} frame the clipping container
   * @param {HTMLElement} target the element scaled (the video)
   */
  constructor(frame, target) {
    this.frame = frame;
    this.target = target;
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    /** @type {Map<number, {x: number, y: number}>} */
    this.pointers = new Map();
    this.pinch = 0;
    frame.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoomAt(e.clientX, e.clientY, e.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
    frame.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      frame.setPointerCapture(e.pointerId);
    });
    frame.addEventListener("pointermove", (e) => {
      const p = this.pointers.get(e.pointerId);
      if (!p) return;
      if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const before = Math.hypot(a.x - b.x, a.y - b.y);
        p.x = e.clientX; p.y = e.clientY;
        const after = Math.hypot(a.x - b.x, a.y - b.y);
        if (before > 0) this.zoomAt((a.x + b.x) / 2, (a.y + b.y) / 2, after / before);
        return;
      }
      if (this.scale > 1) {
        this.x += e.clientX - p.x;
        this.y += e.clientY - p.y;
        this.apply();
      }
      p.x = e.clientX; p.y = e.clientY;
    });
    const up = (/** @type {PointerEvent} */ e) => { this.pointers.delete(e.pointerId); };
    frame.addEventListener("pointerup", up);
    frame.addEventListener("pointercancel", up);
    frame.addEventListener("dblclick", (e) => { if (this.scale > 1) { e.stopPropagation(); this.reset(); } });
    frame.addEventListener("keydown", (e) => {
      if (e.key === "+" || e.key === "=") this.zoomCenter(1.25);
      else if (e.key === "-") this.zoomCenter(0.8);
      else if (e.key === "0") this.reset();
      else return;
      e.preventDefault();
    });
  }

  /** @param {number} factor */
  zoomCenter(factor) {
    const r = this.frame.getBoundingClientRect();
    this.zoomAt(r.left + r.width / 2, r.top + r.height / 2, factor);
  }

  /** Zooms keeping the point under (cx, cy) in place. @param {number} cx @param {number} cy @param {number} factor */
  zoomAt(cx, cy, factor) {
    const r = this.frame.getBoundingClientRect();
    const next = Math.min(MAX_SCALE, Math.max(1, this.scale * factor));
    const px = cx - r.left - r.width / 2;
    const py = cy - r.top - r.height / 2;
    const k = next / this.scale;
    this.x = px - (px - this.x) * k;
    this.y = py - (py - this.y) * k;
    this.scale = next;
    this.apply();
  }

  reset() {
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.apply();
  }

  apply() {
    const r = this.frame.getBoundingClientRect();
    // Keep the picture covering the frame: no panning past its edges.
    const maxX = (r.width * (this.scale - 1)) / 2;
    const maxY = (r.height * (this.scale - 1)) / 2;
    this.x = Math.max(-maxX, Math.min(maxX, this.x));
    this.y = Math.max(-maxY, Math.min(maxY, this.y));
    this.target.style.transform = this.scale === 1 ? "" : `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.frame.classList.toggle("zoomed", this.scale > 1);
    this.frame.dataset.zoom = this.scale.toFixed(2);
  }
}
