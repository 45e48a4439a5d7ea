// The platform's event socket (/api/ws): reconnects with exponential back-off and jitter and
// resumes after the last event id it saw, so nothing that arrived during a blip is lost.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class EventStream {
  /**
   * api: the Api (for the URL and token); auth: keeps `last_event_id` across reloads;
   * onStatus(status, retryInSeconds): "connecting" | "online" | "offline";
   * onFatal(err): the socket was refused for good (401/403): sign in again.
   */
  constructor(api, auth, { onStatus = () => {}, onFatal = () => {} } = {}) {
    this.api = api;
    this.auth = auth;
    this.onStatus = onStatus;
    this.onFatal = onFatal;
    this.handlers = new Map();
    this.lastId = auth.recall("last_event_id");
    this.failures = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = true;
    this.seen = new Set();
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
  }

  /** Drop the socket as a network blip would (used by the reconnect test hook). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.onStatus("connecting");
    const ws = new WebSocket(this.api.wsUrl("ws", { token: this.auth.token, last_id: this.lastId }));
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failures = 0;
      this.onStatus("online");
    };
    ws.onmessage = (msg) => {
      let event;
      try { event = JSON.parse(msg.data); } catch { return; }
      if (event.type === "error") {
        if (["unauthorized", "forbidden", "token_expired"].includes(event.code)) {
          this.stopped = true;
          this.onFatal(event);
        }
        this.dispatch(event);
        return;
      }
      const pos = event.stream_id;
      if (pos) {
        // A resumed stream may repeat the boundary event: handle each position once.
        if (this.seen.has(pos)) return;
        this.seen.add(pos);
        if (this.seen.size > 500) this.seen = new Set([...this.seen].slice(-200));
        this.lastId = pos;
        this.auth.remember("last_event_id", pos);
      }
      this.dispatch(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4001 || ev.code === 4401 || ev.code === 4403) {
        this.stopped = true;
        this.onFatal({ code: ev.code === 4401 ? "unauthorized" : "forbidden", message: ev.reason });
        return;
      }
      if (!opened) {
        this.failures += 1;
        // A refused handshake looks like any network failure to a browser: ask the API whether
        // the token is still good (a 401 there sends the person to the login).
        this.api.get("me").catch(() => {});
      }
      else this.failures = Math.max(this.failures, 1);
      const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** (this.failures - 1));
      const delay = base / 2 + Math.random() * (base / 2);
      this.onStatus("offline", Math.ceil(delay / 1000));
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  dispatch(event) {
    for (const key of [event.type, "*"]) {
      for (const fn of this.handlers.get(key) || []) {
        try { fn(event); } catch (err) { console.error("event handler failed", event.type, err); }
      }
    }
  }
}
