// The phone page's ID photo: during the call the customer photographs their ID card with the phone's
// camera (<input type=file accept=image/* capture>) and it goes to the teller as the call's ID card
// (POST sessions/<id>/id_card). The photo is decoded here and sent as a JPEG no larger than
// MAX_SIDE pixels, so a 12-megapixel camera's file fits the platform's 2 MB cap; anything that is
// not a picture the browser can decode is refused here, with a plain sentence, and nothing is sent.
import { $ } from "./customer_call.js";
import { say } from "./i18n.js";

const MAX_SIDE = 1600;
const MAX_BYTES = 2 * 1024 * 1024;

async function decode(file) {
  try {
    return await createImageBitmap(file);   // applies the photo's EXIF orientation
  } catch {
    return null;
  }
}

function jpegDataUrl(bitmap, quality) {
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", quality);
}

/** Wire the button, the file input and the status line; sessionId() is the call's session. */
export function mountIdPhoto({ api, sessionId, friendly }) {
  const take = $("id-photo-take");
  const input = $("id-photo-input");
  const status = $("id-photo-status");
  const tell = (key, params = {}, bad = false) => {
    say(status, key, params);
    status.classList.toggle("error", bad);
  };
  take.addEventListener("click", () => { input.value = ""; input.click(); });
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    if (!/^image\//.test(file.type || "")) { tell("id_photo.not_image", {}, true); return; }
    const bitmap = await decode(file);
    if (!bitmap) { tell("id_photo.unreadable", {}, true); return; }
    let image = jpegDataUrl(bitmap, 0.9);
    if (image.length * 0.75 > MAX_BYTES) image = jpegDataUrl(bitmap, 0.7);
    bitmap.close();
    if (image.length * 0.75 > MAX_BYTES) { tell("id_photo.too_large", {}, true); return; }
    take.disabled = true;
    tell("id_photo.sending");
    try {
      await api.request("POST", `sessions/${encodeURIComponent(sessionId())}/id_card`, { image, side: "front" });
      tell("id_photo.sent");
    } catch (err) {
      tell("id_photo.failed", { message: friendly(err) }, true);
    } finally {
      take.disabled = false;
    }
  });
}
