// A signature pad on a <canvas>: mouse, pen or finger (pointer events), exported as a PNG data URL.

export const MAX_SIGNATURE_BYTES = 256 * 1024;

export class SignaturePad {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.strokes = 0;
    this.drawing = false;
    this.clear();
    canvas.addEventListener("pointerdown", (e) => this._down(e));
    canvas.addEventListener("pointermove", (e) => this._move(e));
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      canvas.addEventListener(type, () => { this.drawing = false; });
    }
  }

  _point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * (this.canvas.width / r.width), (e.clientY - r.top) * (this.canvas.height / r.height)];
  }

  _down(e) {
    e.preventDefault();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.drawing = true;
    this.strokes += 1;
    const [x, y] = this._point(e);
    this.ctx.beginPath();
    this.ctx.moveTo(x, y);
    this.ctx.lineTo(x + 0.1, y + 0.1);
    this.ctx.stroke();
  }

  _move(e) {
    if (!this.drawing) return;
    const [x, y] = this._point(e);
    this.ctx.lineTo(x, y);
    this.ctx.stroke();
  }

  clear() {
    const { ctx, canvas } = this;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    this.strokes = 0;
  }

  get empty() { return this.strokes === 0; }

  // The PNG as a data URL; throws when it would be larger than the platform accepts.
  dataUrl() {
    const url = this.canvas.toDataURL("image/png");
    const bytes = Math.floor((url.length - url.indexOf(",") - 1) * 3 / 4);
    if (bytes > MAX_SIGNATURE_BYTES) throw new Error("The signature image is too large; clear it and sign again.");
    return url;
  }
}
