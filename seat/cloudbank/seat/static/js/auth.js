// The signed-in person: token and user kept in sessionStorage, so a reload (even mid-call)
// keeps the seat signed in, while another browser tab or a closed browser does not.

const KEY = "cloudbank.seat.auth";

export class Auth {
  constructor(storage = sessionStorage) {
    this.storage = storage;
    this.state = null;
    try { this.state = JSON.parse(storage.getItem(KEY) || "null"); } catch { this.state = null; }
  }

  get token() { return this.state ? this.state.token : null; }
  get user() { return this.state ? this.state.user : null; }
  get role() { return this.state && this.state.user ? this.state.user.role : null; }

  /** Seconds until the token expires (negative when it has). */
  get remaining() {
    return this.state ? this.state.expires_at - Date.now() / 1000 : -1;
  }

  save(login) {
    this.state = { token: login.token, user: login.user, expires_at: Date.now() / 1000 + (login.expires_in || 0) };
    this.storage.setItem(KEY, JSON.stringify(this.state));
  }

  clear() {
    this.state = null;
    this.storage.removeItem(KEY);
    // Anything tied to the person (the call to return to, the event position) goes too.
    for (const k of Object.keys(this.storage)) if (k.startsWith("cloudbank.seat.")) this.storage.removeItem(k);
  }

  /** Per-person values that must survive a reload (current call, last event id). */
  remember(name, value) {
    const k = `cloudbank.seat.${name}`;
    if (value === null || value === undefined) this.storage.removeItem(k);
    else this.storage.setItem(k, JSON.stringify(value));
  }

  recall(name) {
    try { return JSON.parse(this.storage.getItem(`cloudbank.seat.${name}`) || "null"); } catch { return null; }
  }
}
