// One player for one call: the customer and the teller side by side, each party's audio and video
// segments played in sequence on the call's timeline and kept in step by one clock, with the
// transcript beside them. The seek bar, the Play button and a click on a transcript line all move
// that one clock; every media element follows it.
//
// Timeline: the manifest gives each segment its place (`start_s`, seconds after the recording began,
// the clock the transcript's cue times use) and `duration_s`; the file itself starts at 0. Older
// manifests have no start_s: their files carry the call's timeline in their own timestamps.
import { h, fill, clock } from "./dom.js";
import { t } from "./i18n.js";

const PARTIES = ["customer", "teller"];
const DRIFT_S = 0.3;   // a media element further than this from the clock is moved back onto it
const TICK_MS = 200;

/** The streams (party x kind) of a manifest: segments sorted on the call's timeline. */
export function timeline(manifest) {
  const streams = {};
  let end = 0;
  for (const track of manifest.tracks || []) {
    const rate = track.clock_rate || (track.kind === "audio" ? 48000 : 90000);
    const key = `${track.party}-${track.kind}`;
    for (const seg of track.segments || []) {
      const relative = typeof seg.start_s === "number";
      const start = relative ? seg.start_s : (seg.first_pts || 0) / rate;
      const length = relative ? seg.duration_s : ((seg.last_pts || 0) - (seg.first_pts || 0)) / rate;
      // A segment ends where the next one of its stream begins (its last frame lasts until then).
      (streams[key] ||= []).push({ path: seg.path, start, end: start + Math.max(length, 0.02), relative });
    }
  }
  for (const list of Object.values(streams)) {
    list.sort((a, b) => a.start - b.start);
    for (let i = 0; i + 1 < list.length; i++) list[i].end = Math.max(list[i].end, list[i + 1].start);
    end = Math.max(end, list[list.length - 1].end);
  }
  const wall = manifest.ended_at && manifest.started_at ? manifest.ended_at - manifest.started_at : 0;
  return { streams, duration: Math.max(end, Math.min(wall, end + 2)) };
}

/** Transcript lines [{start, end, speaker, text}] from transcript.json or WebVTT text. */
export function parseTranscript(text, isJson) {
  if (isJson) {
    const body = JSON.parse(text);
    return (body.lines || []).map((l) => ({ start: l.start, end: l.end, speaker: l.speaker, text: l.text }));
  }
  const seconds = (stamp) => stamp.split(":").reduce((acc, part) => acc * 60 + Number(part), 0);
  const lines = [];
  for (const block of text.replace(/\r/g, "").split(/\n\n+/)) {
    const rows = block.split("\n");
    const at = rows.findIndex((r) => r.includes("-->"));
    if (at < 0) continue;
    const [from, to] = rows[at].split("-->").map((s) => seconds(s.trim().split(/\s/)[0]));
    const body = rows.slice(at + 1).join(" ");
    const voice = /^<v ([^>]+)>/.exec(body);
    lines.push({ start: from, end: to, speaker: voice ? voice[1] : "", text: body.replace(/<[^>]+>/g, "").trim() });
  }
  return lines;
}

/**
 * renderCallPlayer(root, {manifest, src(path) -> URL, transcript: [{start, end, speaker, text}]})
 * returns {seek(t), play(), pause(), time(), destroy()}.
 */
export function renderCallPlayer(root, { manifest, src, transcript = [] }) {
  const { streams, duration } = timeline(manifest);
  const state = { t: 0, playing: false, wall: 0, base: 0 };
  // Per stream: the element playing (el, with the test id) and a hidden spare that loads the next
  // segment ahead, swapped in at the boundary, so a new file does not start with a gap.
  const players = [];   // {key, el, seg, spare, spareSeg, gap?}
  const withSpare = (el) => {
    const spare = el.cloneNode(false);
    delete spare.dataset.testid;
    spare.classList.add("spare");
    spare.muted = el.muted;
    el.after(spare);
    return spare;
  };
  const tiles = PARTIES.map((party) => {
    const video = streams[`${party}-video`]
      ? h("video", { muted: true, playsinline: true, preload: "auto", testid: `player-video-${party}`,
        "aria-label": t("player.video_of", { party: t(`party.${party}`) }) })
      : null;
    if (video) video.muted = true;  // the sound comes from the party's audio stream
    const gap = h("p", { class: "gap", testid: `player-gap-${party}`, hidden: true }, t("player.no_video_now"));
    const missing = video ? null : h("p", { class: "gap bad", testid: `player-missing-${party}` },
      t("player.video_missing", { party: t(`party.${party}`) }));
    const videoPlayer = video ? { key: `${party}-video`, el: video, seg: null, gap, spare: null, spareSeg: null } : null;
    if (videoPlayer) players.push(videoPlayer);
    if (streams[`${party}-audio`]) {
      const audio = h("audio", { preload: "auto", testid: `player-audio-${party}` });
      const audioPlayer = { key: `${party}-audio`, el: audio, seg: null, spare: null, spareSeg: null };
      players.push(audioPlayer);
      const tile = h("figure", { class: "tile", testid: `player-tile-${party}` }, video || missing, gap, audio,
        h("figcaption", {}, t(`party.${party}`)));
      audioPlayer.spare = withSpare(audio);
      if (videoPlayer) videoPlayer.spare = withSpare(video);
      return tile;
    }
    const tile = h("figure", { class: "tile", testid: `player-tile-${party}` }, video || missing, gap,
      h("figcaption", {}, t(`party.${party}`), " · ", t("player.audio_missing")));
    if (videoPlayer) videoPlayer.spare = withSpare(video);
    return tile;
  });

  const playButton = h("button", { type: "button", class: "primary", testid: "player-play", onclick: toggle },
    t("player.play"));
  const seekBar = h("input", { type: "range", min: "0", max: String(duration), step: "0.1", value: "0",
    testid: "player-seek", "aria-label": t("player.seek") });
  seekBar.addEventListener("input", () => seek(Number(seekBar.value)));
  const timeLabel = h("span", { class: "time", testid: "player-time", "aria-live": "off" });
  const cues = transcript.map((line, i) => h("li", {},
    h("button", { type: "button", class: "cue", testid: `cue-${i}`, "data-start": String(line.start),
      "aria-label": t("player.cue_at", { time: clock(line.start), text: line.text }), onclick: () => seek(line.start) },
    h("span", { class: "muted" }, clock(line.start)), " ",
    h("strong", {}, line.speaker ? t(`party.${line.speaker}`) : ""), " ", line.text)));
  const transcriptPanel = h("aside", { class: "transcript", testid: "player-transcript", "aria-label": t("recordings.transcript") },
    h("h4", {}, t("recordings.transcript")),
    cues.length ? h("ol", {}, cues) : h("p", { class: "muted", testid: "player-no-transcript" }, t("player.no_transcript")));

  fill(root, h("div", { class: "call-player", testid: "call-player", "data-duration": duration.toFixed(2) },
    h("div", { class: "stage" }, h("div", { class: "tiles" }, tiles),
      h("div", { class: "controls row" }, playButton, seekBar, timeLabel)),
    transcriptPanel));

  function now() { return state.playing ? state.base + (performance.now() - state.wall) / 1000 : state.t; }

  function segmentAt(key, at) {
    // Before a stream's first frame (it connected a moment after the recording began) that frame shows.
    const list = streams[key] || [];
    if (list.length && at < list[0].start && list[0].start - at < 1) return list[0];
    return list.find((s) => at >= s.start && at < s.end) || null;
  }

  function follow(p, at) {
    const seg = segmentAt(p.key, at);
    if (p.gap) p.gap.hidden = Boolean(seg) || at < 0.05;
    if (!seg) {
      if (!p.el.paused) p.el.pause();
      if (p.el.tagName === "VIDEO") p.el.style.visibility = "hidden";
      p.seg = null;
      return;
    }
    if (p.el.tagName === "VIDEO") p.el.style.visibility = "visible";
    // Before a stream's first frame, it waits on that frame (paused) instead of running ahead.
    const early = at < seg.start;
    const local = early ? (seg.relative ? 0 : seg.start) : (seg.relative ? at - seg.start : at);
    if (p.seg !== seg && p.spareSeg === seg && p.spare.readyState >= 2) {
      // The spare has this segment loaded: it takes over, the old element becomes the spare.
      const old = p.el;
      p.el = p.spare;
      p.spare = old;
      p.spareSeg = null;
      p.el.dataset.testid = old.dataset.testid;
      delete old.dataset.testid;
      p.el.classList.remove("spare");
      old.classList.add("spare");
      old.pause();
      p.seg = seg;
      p.el.dataset.segment = seg.path.split("/").pop();
      if (p.el.tagName === "VIDEO") p.el.style.visibility = "visible";
      if (Math.abs(p.el.currentTime - local) > DRIFT_S) p.el.currentTime = Math.max(0, local);
    } else if (p.seg !== seg) {
      const el = p.el;
      p.seg = seg;
      el.src = src(seg.path);
      el.dataset.segment = seg.path.split("/").pop();
      el.addEventListener("loadedmetadata", () => {
        if (p.seg !== seg || p.el !== el) return;
        const from = Math.max(now(), seg.start);
        el.currentTime = Math.max(0, seg.relative ? from - seg.start : from);
        if (state.playing && now() >= seg.start) el.play().catch(() => {});  // at once, not at the next tick
      }, { once: true });
    } else if (p.el.readyState >= 1 && Math.abs(p.el.currentTime - local) > DRIFT_S) {
      p.el.currentTime = Math.max(0, local);
    }
    if (state.playing && !early && p.el.paused && p.el.readyState >= 1) p.el.play().catch(() => {});
    if ((!state.playing || early) && !p.el.paused) p.el.pause();
    const list = streams[p.key];
    const next = list[list.indexOf(seg) + 1];
    if (p.spare && next && p.spareSeg !== next && next.start - at < 2) {
      p.spareSeg = next;
      p.spare.src = src(next.path);  // loads ahead, paused and hidden, at its first frame
    }
  }

  function render() {
    const at = now();
    if (at >= duration && state.playing) { pause(); state.t = duration; }
    const shown = Math.min(now(), duration);
    if (document.activeElement !== seekBar) seekBar.value = String(shown);
    timeLabel.textContent = `${clock(shown)} / ${clock(duration)}`;
    root.querySelector("[data-testid=call-player]").dataset.time = shown.toFixed(2);
    for (const p of players) follow(p, shown);
    transcript.forEach((line, i) => {
      const active = shown >= line.start && shown < Math.max(line.end, line.start + 0.5);
      cues[i].firstChild.classList.toggle("active", active);
      if (active) cues[i].firstChild.setAttribute("aria-current", "true");
      else cues[i].firstChild.removeAttribute("aria-current");
    });
  }

  function play() {
    if (state.t >= duration) state.t = 0;
    state.base = state.t;
    state.wall = performance.now();
    state.playing = true;
    playButton.textContent = t("player.pause");
    render();
  }

  function pause() {
    state.t = now();
    state.playing = false;
    playButton.textContent = t("player.play");
    for (const p of players) { p.el.pause(); if (p.spare) p.spare.pause(); }
  }

  function toggle() { if (state.playing) pause(); else play(); }

  function seek(at) {
    const to = Math.max(0, Math.min(duration, at));
    state.t = to;
    state.base = to;
    state.wall = performance.now();
    render();
  }

  const timer = setInterval(() => { if (root.isConnected) render(); else destroy(); }, TICK_MS);
  function destroy() {
    clearInterval(timer);
    for (const p of players) {
      // load() with no src aborts a fetch in flight (a detached element keeps loading otherwise).
      for (const el of [p.el, p.spare]) if (el) { el.pause(); el.removeAttribute("src"); el.load(); }
    }
  }
  render();
  return { seek, play, pause, time: now, destroy };
}
