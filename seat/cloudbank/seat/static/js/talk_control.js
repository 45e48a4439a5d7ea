// The monitor's "Whisper" and "Barge in" buttons: a supervisor speaks to the teller only, or joins
// the call (customer and teller both hear). The platform allows it first (POST sessions/<id>/talk,
// audited), then the microphone goes on the monitor's own sendonly audio section and the node is
// told ({type: "talk", mode}); it forwards that audio only as far as the platform allowed.
import { h } from "./dom.js";
import { t } from "./i18n.js";

export class TalkControl {
  /** api: the Api; sessionId; link: the monitor's VideoLink; onError(message). */
  constructor(api, sessionId, link, { onError }) {
    this.api = api;
    this.sessionId = sessionId;
    this.link = link;
    this.onError = onError;
    this.mode = "off";
    this.track = null;
    this.whisperBtn = h("button", { type: "button", testid: "whisper", "aria-pressed": "false",
      onclick: () => this.toggle("whisper") }, t("sup.whisper"));
    this.bargeBtn = h("button", { type: "button", testid: "barge-in", "aria-pressed": "false",
      onclick: () => this.toggle("barge") }, t("sup.barge"));
    this.state = h("span", { class: "muted", testid: "talk-state", role: "status" });
    this.el = h("span", { class: "talk-control" }, this.whisperBtn, this.bargeBtn, this.state);
    this.show();
  }

  show() {
    const on = (btn, mode, label, stopLabel) => {
      btn.setAttribute("aria-pressed", String(this.mode === mode));
      btn.textContent = t(this.mode === mode ? stopLabel : label);
    };
    on(this.whisperBtn, "whisper", "sup.whisper", "sup.stop_whisper");
    on(this.bargeBtn, "barge", "sup.barge", "sup.leave_barge");
    this.state.textContent = this.mode === "whisper" ? t("sup.whispering") : this.mode === "barge" ? t("sup.barging") : "";
  }

  toggle(mode) {
    return this.set(this.mode === mode ? "off" : mode);
  }

  async set(mode) {
    try {
      await this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/talk`, { mode });
      if (mode !== "off" && !this.track) {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        this.track = stream.getAudioTracks()[0] || null;
      }
      await this.link.setMicrophone(mode === "off" ? null : this.track);
      this.mode = mode;
      this.link.send({ type: "talk", mode });
    } catch (err) {
      this.onError(err.message || String(err));
    }
    if (mode === "off") this.release();
    this.show();
  }

  /** The link rejoined: the node's new member starts silent, so say again what was allowed. */
  resend() {
    if (this.mode !== "off") this.link.send({ type: "talk", mode: this.mode });
  }

  /** A refusal from the node (not_allowed): the microphone goes quiet again. */
  refused(message) {
    this.onError(message);
    this.mode = "off";
    this.link.setMicrophone(null).catch(() => {});
    this.release();
    this.show();
  }

  release() {
    if (this.track) this.track.stop();
    this.track = null;
  }

  /** Monitoring ends: tell the platform the supervisor stopped speaking (audited). */
  destroy() {
    if (this.mode !== "off") {
      this.api.post(`sessions/${encodeURIComponent(this.sessionId)}/talk`, { mode: "off" }).catch(() => {});
    }
    this.mode = "off";
    this.release();
  }
}
