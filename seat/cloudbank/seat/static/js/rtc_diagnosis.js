// Why a media connection did not come up, from what the browser itself knows about one attempt:
// did the signalling socket open, did the node answer the offer, what error code it sent, the ICE
// state and the candidate pairs in getStats (tried, answered, failed), and what the platform said
// when asked for a fresh grant. The reason is a code the call screen puts into words.

/** A summary of one RTCPeerConnection's getStats: candidate counts and pair states. */
export async function iceSummary(pc) {
  const s = { pairs: 0, succeeded: 0, failed: 0, inProgress: 0, local: 0, remote: 0, dtls: "",
    ice: pc.iceConnectionState, connection: pc.connectionState };
  const report = await pc.getStats();
  report.forEach((r) => {
    if (r.type === "candidate-pair") {
      s.pairs += 1;
      if (r.state === "succeeded") s.succeeded += 1;
      else if (r.state === "failed") s.failed += 1;
      else if (r.state === "in-progress") s.inProgress += 1;
    } else if (r.type === "local-candidate") s.local += 1;
    else if (r.type === "remote-candidate") s.remote += 1;
    else if (r.type === "transport" && r.dtlsState) s.dtls = r.dtlsState;
  });
  return s;
}

/** Node error codes that say this console may not be in the call from here, whatever the network. */
const REPLACED = ["room_full", "replaced"];

/**
 * The reason code for a failed attempt. trace: {wsOpened, answered, nodeError, wasConnected,
 * remoteCandidates (in the answer), stats (iceSummary), grantError: code of a refused rejoin,
 * offline: the platform could not be reached}.
 */
export function diagnose(trace) {
  const s = trace.stats || {};
  if (trace.offline) return "offline";
  if (trace.grantError === "no_video_node") return "no_node";
  if (REPLACED.includes(trace.nodeError)) return "room_full";
  if (!trace.wsOpened) return "node_unreachable";
  if (trace.nodeError && !["ice_timeout", "error"].includes(trace.nodeError)) return "refused";
  if (!trace.answered) return "no_answer";
  if (trace.wasConnected) return "lost";
  if (s.succeeded > 0 || s.ice === "connected" || s.ice === "completed" || s.dtls === "failed") return "dtls";
  const remote = Math.max(s.remote || 0, trace.remoteCandidates || 0);
  if (!s.local || !remote || !s.pairs) return "no_path";
  return "blocked";
}

/** Whether rejoining by itself can help (a second console in the call cannot be retried away). */
export function retriable(reason) {
  return reason !== "room_full";
}
