// The signed-in person: token and user, kept for this browser tab only (sessionStorage).
const KEY = "cloudbank.media.auth";

export class Auth {
  constructor() {
    try { this.state = JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { this.state = null; }
    if (this.state && this.state.expires_at * 1000 < Date.now()) this.clear();
  }
  get token() { return this.state ? this.state.token : null; }
  get user() { return this.state ? this.state.user : null; }
  get role() { return this.user ? this.user.role : null; }
  save(login) {
    this.state = { token: login.token, user: login.user, expires_at: Date.now() / 1000 + login.expires_in };
    sessionStorage.setItem(KEY, JSON.stringify(this.state));
  }
  clear() {
    this.state = null;
    sessionStorage.removeItem(KEY);
  }
}
