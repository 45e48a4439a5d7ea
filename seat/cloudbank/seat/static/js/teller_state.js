// The teller's state on screen: one store that the top bar's badge, the home screen and the
// wrap-up form all read, so no two parts of the console can say different things ("Ringing" in the
// top bar, "Ready" on the page). Whatever learns a new state (the platform's answer to GET teller,
// a teller.state or offer event, accepting a call, hanging up) sets it here; the views subscribe.

/** The platform says wrap_up; older parts of the console said wrapup. One spelling on screen. */
export function normaliseState(state) {
  if (!state) return null;
  const s = String(state);
  return s === "wrapup" ? "wrap_up" : s;
}

export class TellerState {
  constructor() {
    this.value = { state: null, reason: null, since: null, wrapupUntil: null };
    this.listeners = new Set();
    // Counts set()s: an answer to a request sent before the last one is older than what is shown.
    this.version = 0;
  }

  /** Taken when a request for the teller's state goes out; given back to fromTeller with its answer. */
  asOf() {
    return this.version;
  }

  get state() {
    return this.value.state;
  }

  /**
   * Merge what is known now. A new state without its own `since` starts counting now; the same
   * state again keeps its `since` (a refresh must not reset the teller's time in state).
   */
  set(patch) {
    this.version += 1;
    const prev = this.value;
    const next = { ...prev };
    if ("state" in patch) next.state = normaliseState(patch.state);
    for (const key of ["reason", "wrapupUntil"]) if (key in patch) next[key] = patch[key] ?? null;
    if (patch.since) next.since = Number(patch.since);
    else if (next.state !== prev.state) next.since = next.state ? Date.now() / 1000 : null;
    if (next.state !== "wrap_up" && !("wrapupUntil" in patch)) next.wrapupUntil = null;
    if (next.state !== "not_ready" && !("reason" in patch)) next.reason = null;
    const changed = ["state", "reason", "since", "wrapupUntil"].some((k) => next[k] !== prev[k]);
    this.value = next;
    if (changed) for (const fn of [...this.listeners]) fn(next, prev);
  }

  /**
   * The platform's view of the teller (`GET teller` answer or a `teller.state` event's teller).
   * asOf: the version when the request went out. If anything set the state since (the teller hung
   * up while a slow GET was out), the answer is stale and dropped: it would say "In a call" over
   * the wrap-up form.
   */
  fromTeller(teller, asOf = null) {
    if (asOf !== null && asOf !== this.version) return;
    const st = (teller && teller.teller) || teller || {};
    this.set({ state: st.state || "offline", reason: st.reason || null, since: Number(st.since) || null,
      wrapupUntil: Number(st.wrapup_until) || null });
  }

  /** fn(value, previous) on every change; returns the unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
