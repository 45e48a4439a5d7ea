// JSON over HTTP with the signed-in person's bearer token; refusals become ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || "http_error";
    this.body = body || {};
  }
}

/** The server could not be reached (as distinct from a refusal). */
export class NetworkError extends Error {}

export class Api {
  /** base: URL prefix ("/api/" for the platform, "api/" for this media app); auth holds the token. */
  constructor(base, auth, onExpired) {
    this.base = new URL(base, location.href).href;
    this.auth = auth;
    this.onExpired = onExpired;
  }

  url(path, query = {}) {
    const u = new URL(path.replace(/^\//, ""), this.base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
    return u.href;
  }

  /** fetch with the token; returns the Response (throws ApiError for 4xx/5xx). */
  async raw(method, path, { query, body, headers = {} } = {}) {
    const token = this.auth.token;
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.url(path, query), { method, headers: h, body, credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new NetworkError(String(err && err.message ? err.message : err));
    }
    if (!response.ok) {
      let data = null;
      const text = await response.text();
      try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; }
      const err = new ApiError(response.status, data);
      if (response.status === 401 && token && this.onExpired) this.onExpired(err);
      throw err;
    }
    return response;
  }

  async call(method, path, body, query) {
    const init = { query, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await this.raw(method, path, init);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  get(path, query) { return this.call("GET", path, undefined, query); }
  post(path, body = {}) { return this.call("POST", path, body); }
  put(path, body) { return this.call("PUT", path, body); }

  del(path) { return this.call("DELETE", path); }

  /**
   * POST a file as the raw body with upload progress (fetch cannot report it): onProgress(sent, total).
   * Resolves to the JSON answer; refusals become ApiError, an unreachable server NetworkError.
   */
  upload(path, { query, body, headers = {}, onProgress } = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.url(path, query));
      const token = this.auth.token;
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (ev) => { if (onProgress) onProgress(ev.loaded, ev.lengthComputable ? ev.total : body.size); };
      xhr.onerror = () => reject(new NetworkError("the upload could not reach the server"));
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch { data = { message: xhr.responseText.slice(0, 200) }; }
        if (xhr.status >= 200 && xhr.status < 300) { resolve(data); return; }
        const err = new ApiError(xhr.status, data);
        if (xhr.status === 401 && token && this.onExpired) this.onExpired(err);
        reject(err);
      };
      xhr.send(body);
    });
  }

  /** An object URL for a protected resource (image/video previews, downloads). */
  async objectUrl(path) {
    const response = await this.raw("GET", path);
    return URL.createObjectURL(await response.blob());
  }
}

/** Sign-out's revocation: POST url with the token, kept alive past the page (closed, reloaded or
 * navigated away right after Sign out), errors ignored (the local sign-out already happened). */
export function revokeToken(url, token) {
  fetch(url, { method: "POST", headers: { Authorization: `Bearer ${token}` }, keepalive: true,
    credentials: "omit", cache: "no-store" }).catch(() => {});
}
