// The platform REST API (docs/protocol.md): JSON in and out, bearer token, errors as ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || "http_error";
    this.body = body || {};
  }
}

/** A network failure (server unreachable), as distinct from a refusal. */
export class NetworkError extends Error {}

export class Api {
  /**
   * base: the API's URL prefix ("/api/"); auth: the Auth holding the token; onExpired: called
   * once a signed-in request is refused with 401, so the app can send the person to the login.
   */
  constructor(base, auth, onExpired) {
    this.base = base.endsWith("/") ? base : `${base}/`;
    this.auth = auth;
    this.onExpired = onExpired;
  }

  url(path) {
    return new URL(this.base + path.replace(/^\//, ""), location.href).href;
  }

  /** ws(s):// URL of an API path, with the token in the query (browsers cannot set WS headers). */
  wsUrl(path, query = {}) {
    const u = new URL(this.url(path));
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
    return u.href;
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = this.auth.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.url(path), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store",
      });
    } catch (err) {
      throw new NetworkError(String(err && err.message ? err.message : err));
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
    }
    if (!response.ok) {
      const err = new ApiError(response.status, data);
      if (response.status === 401 && token && this.onExpired) this.onExpired(err);
      throw err;
    }
    return data;
  }

  /** An image or file the API serves to this person (e.g. an ID card's `url`), as a Blob. */
  async blob(url) {
    const headers = this.auth.token ? { Authorization: `Bearer ${this.auth.token}` } : {};
    let response;
    try {
      response = await fetch(new URL(url, location.href).href, { headers, credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new NetworkError(String(err && err.message ? err.message : err));
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { data = null; }
      throw new ApiError(response.status, data);
    }
    return response.blob();
  }

  get(path) { return this.call("GET", path); }
  post(path, body = {}) { return this.call("POST", path, body); }
}

/** Sign-out's revocation: POST url with the token, kept alive past the page (closed, reloaded or
 * navigated away right after Sign out), errors ignored (the local sign-out already happened). */
export function revokeToken(url, token) {
  fetch(url, { method: "POST", headers: { Authorization: `Bearer ${token}` }, keepalive: true,
    credentials: "omit", cache: "no-store" }).catch(() => {});
}
