// The platform API for customer pages (phone and kiosk): REST calls and the events socket.
// The events socket reconnects after a drop and resumes after the last event id it delivered.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

export class Api {
  // base: where REST calls go ("/api/" on the cloudbank server, "api/" on the kiosk's local page).
  // eventsUrl: the ws(s):// URL of /api/ws (needs a token).
  constructor({ base, eventsUrl, token = null }) {
    this.base = base;
    this.eventsUrl = eventsUrl;
    this.token = token;
  }

  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(this.base + path, init);
    } catch (err) {
      throw new ApiError(0, "unreachable", "The bank cannot be reached. Check your connection and try again.");
    }
    let data = {};
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
    }
    if (!resp.ok) throw new ApiError(resp.status, data.error || "error", data.message || resp.statusText, data);
    return data;
  }

  // Follow events: onEvent(event) for each; returns an object with close().
  events(onEvent, { lastId = "", onState = () => {} } = {}) {
    return new EventStream(this, onEvent, lastId, onState);
  }
}

class EventStream {
  constructor(api, onEvent, lastId, onState) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = lastId;
    this.closed = false;
    this.backoff = 250;
    this.connects = 0;
    this.ready = new Promise((resolve) => { this._resolveReady = resolve; });
    this._open();
  }

  _open() {
    const q = new URLSearchParams({ token: this.api.token || "" });
    if (this.lastId) q.set("last_id", this.lastId);
    const ws = new WebSocket(`${this.api.eventsUrl}?${q}`);
    this.ws = ws;
    ws.onopen = () => { this.connects += 1; this.backoff = 250; this.onState("open"); };
    ws.onmessage = (msg) => {
      let event;
      try { event = JSON.parse(msg.data); } catch { return; }
      if (event.stream_id) this.lastId = event.stream_id;
      if (event.type === "hello") { this._resolveReady(); return; }
      if (event.type === "pong") return;
      this.onEvent(event);
    };
    ws.onclose = (ev) => {
      if (this.closed) return;
      this.onState("reconnecting");
      // 4001: token expired; a new sign-in is needed, retrying would not help.
      if (ev.code === 4001 || ev.code === 1008) { this.onState("closed"); return; }
      setTimeout(() => { if (!this.closed) this._open(); }, this.backoff);
      this.backoff = Math.min(5000, this.backoff * 2);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
