// avatarchat page: your own avatar (issue 21). A dialog to pick one from the gallery (GET /avatars) or bring a
// photo or video (a file, the phone's camera, or dropped on the stage): POST /avatars with upload progress, then a
// preview of the rest frame with the detected face framed, or words that say why the picture was refused and what
// to send instead. The choice goes with the next /chat as `avatar` (app.js reads window.avatarchat.avatar) and the
// idle layer switches at once. Framing: the three video layers fill the stage (object-fit: cover) and one CSS
// variable on #layers centres all of them on the current avatar's face, so no layer can jump against another.
(() => {
  "use strict";
  const ac = window.avatarchat;
  const $ = (id) => document.getElementById(id);
  const stage = $("layers"), dialog = $("avatars"), openBtn = $("avatarbtn"), gallery = $("gallery");
  const fileInput = $("avatarfile"), cameraInput = $("avatarcamera"), progress = $("avatarprogress");
  const stateEl = $("avatarstate"), figure = $("avatarpreview"), previewImg = $("previewimg"), faceBox = $("facebox");
  const voiceSel = $("voice");
  const FACE_Y = 0.45;  // the face's centre sits a little above the stage's middle: room for the shoulders

  // What the page needs in words; the server's own message (also plain) for anything not listed.
  const REFUSED = {
    no_face: "No face was found in that picture. Use a photo where your face is clearly visible, facing the camera.",
    several_faces: "That picture shows more than one face. Use one with only your face in it, or crop the others out.",
    too_small: "The face is too small in that picture. Come closer to the camera, or crop the photo around your face.",
    too_dark: "That picture is too dark to see the face. Take it again facing a window or a lamp.",
    too_large: "That file is too big. Send a smaller photo or a shorter video.",
    body_too_large: "That file is too big. Send a smaller photo or a shorter video.",
    too_many_pixels: "That picture is too large. Send a smaller one (an ordinary phone photo is fine).",
    too_long: "That video is too long. Send a clip of a few seconds.",
    not_media: "That file is not a picture or a video. Send a JPEG, PNG or WebP photo, or an MP4, WebM or MOV video.",
    truncated: "That file is incomplete. Take the photo again, or send another file.",
    undecodable: "That file could not be read. Take the photo again, or send another file.",
    trailing_data: "That file could not be read. Save the photo again as a JPEG or PNG and send that.",
    empty: "That file is empty. Choose another one.",
    too_short: "That video has no usable frames. Send a photo, or a video of a few seconds.",
    no_video: "That file holds no video picture. Send a photo, or a video of a few seconds.",
    too_slow: "That file took too long to read. Send a smaller photo or a shorter video.",
    too_many_avatars: "You already have as many avatars as this server allows. Pick one from the gallery.",
    rate_limited: "Too many uploads in a short time. Wait a minute, then try again.",
    server_full: "The server has no room for more avatars right now. Try again later, or pick one from the gallery.",
    uploads_off: "This server does not take your own pictures. Pick an avatar from the gallery.",
    not_in_redis_mode: "This server does not take your own pictures yet. Pick an avatar from the gallery.",
    unknown_session: "This conversation has ended on the server. Reload the page, then try again.",
  };

  let entries = [], current = null, face = null;  // the gallery, the chosen avatar's entry, its face box
  ac.avatar = null;  // the id /chat sends; null: the session's own (the default until one is chosen)
  ac.avatarState = { refused: [], uploaded: [], said: [] };  // observable for tests and people

  // ---- framing --------------------------------------------------------------------------------------------
  // object-position in % puts the image's p-point on the box's p-point; the p that puts the face's centre at the
  // wanted place in the box, for the scale `cover` picks, kept within 0..100% (no edge ever leaves the box).
  function frame() {
    if (!current) return;
    const bw = stage.clientWidth, bh = stage.clientHeight, w = current.width, h = current.height;
    if (!bw || !bh || !w || !h) return;
    const f = current.face || { x: 0, y: 0, width: w, height: h };
    const s = Math.max(bw / w, bh / h), sw = w * s, sh = h * s;
    const at = (centre, scaled, box, want) => (scaled - box < 1 ? 50
      : Math.min(100, Math.max(0, (100 * (centre * s - box * want)) / (scaled - box))));
    const px = at(f.x + f.width / 2, sw, bw, 0.5), py = at(f.y + f.height / 2, sh, bh, FACE_Y);
    stage.style.setProperty("--face-pos", `${px.toFixed(2)}% ${py.toFixed(2)}%`);
  }
  new ResizeObserver(frame).observe(stage);

  // ---- the gallery -----------------------------------------------------------------------------------------
  async function loadGallery() {
    const session = await ac.ensureSession();
    const res = await ac.api(`/avatars?session_id=${encodeURIComponent(session)}`);
    if (!res.ok) return;
    const body = await res.json();
    entries = body.avatars;
    const shown = entries.find((e) => e.avatar_id === (ac.avatar || body.current));
    if (shown) {
      current = shown;
      frame();
      // A reloaded page starts on the bundled idle loop; the session may have another face already.
      if (new URL(shown.idle_url, location.href).href !== $("idle").src) ac.setAvatar(shown.idle_url, shown.listen_url);
    }
    render();
  }
  function render() {
    gallery.textContent = "";
    for (const e of entries) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "pick";
      b.dataset.id = e.avatar_id;
      b.setAttribute("aria-pressed", String(!!current && current.avatar_id === e.avatar_id));
      const img = document.createElement("img");
      img.src = e.preview_url;
      img.alt = "";
      const name = document.createElement("span");
      name.textContent = e.name;
      b.append(img, name);
      b.addEventListener("click", () => choose(e));
      li.appendChild(b);
      gallery.appendChild(li);
    }
  }
  function choose(e, say = true) {
    current = e;
    ac.avatar = e.avatar_id;
    ac.setAvatar(e.idle_url, e.listen_url);
    frame();
    if (e.voice && [...voiceSel.options].some((o) => o.value === e.voice)) {  // a gallery face's own voice
      voiceSel.value = e.voice;
      voiceSel.dispatchEvent(new Event("change"));
    }
    render();
    if (say) tell(`${e.name} will answer your next message.`);
  }
  window.addEventListener("avatarchat:session", () => {
    if (ac.avatar && ac.avatar.startsWith("u-")) ac.avatar = null;  // an upload went with its old session
    loadGallery().catch(() => {});
  });

  // ---- upload ------------------------------------------------------------------------------------------------
  function tell(text, refused = false) {
    stateEl.textContent = text;
    ac.avatarState.said.push(text);
    if (ac.avatarState.said.length > 50) ac.avatarState.said.shift();
    stateEl.classList.toggle("refused", refused);
  }
  function showPreview(e) {
    previewImg.src = e.preview_url;
    const f = e.face;
    faceBox.hidden = !f;
    if (f) {  // the box in % of the frame, so it sits on the face at any size the preview is drawn
      faceBox.style.left = `${(100 * f.x) / e.width}%`;
      faceBox.style.top = `${(100 * f.y) / e.height}%`;
      faceBox.style.width = `${(100 * f.width) / e.width}%`;
      faceBox.style.height = `${(100 * f.height) / e.height}%`;
    }
    figure.hidden = false;
  }
  async function upload(file) {
    if (!file) return;
    if (!dialog.open) dialog.showModal();
    let session;
    try { session = await ac.ensureSession(); } catch { return tell("The server could not be reached. Try again.", true); }
    const data = new FormData();
    data.append("file", file);
    data.append("session_id", session);
    const xhr = new XMLHttpRequest();  // fetch() cannot report upload progress
    xhr.open("POST", "/avatars");
    xhr.responseType = "json";
    progress.hidden = false;
    progress.removeAttribute("value");
    tell("Uploading…");
    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable) return;
      progress.max = ev.total;
      progress.value = ev.loaded;
      tell(`Uploading… ${Math.round((100 * ev.loaded) / ev.total)}%`);
    });
    xhr.upload.addEventListener("load", () => { progress.removeAttribute("value"); tell("Registering the face…"); });
    const done = new Promise((resolve) => {
      xhr.addEventListener("load", () => resolve(xhr.status));
      xhr.addEventListener("error", () => resolve(0));
      xhr.addEventListener("abort", () => resolve(0));
    });
    fileInput.disabled = cameraInput.disabled = true;
    xhr.send(data);
    const status = await done;
    fileInput.disabled = cameraInput.disabled = false;
    fileInput.value = cameraInput.value = "";  // the same file may be chosen again
    progress.hidden = true;
    const body = xhr.response || {};
    if (status === 201 && body.avatar_id) {
      ac.avatarState.uploaded.push(body.avatar_id);
      entries = entries.filter((e) => e.avatar_id !== body.avatar_id).concat([body]);
      showPreview(body);
      choose(body, false);
      tell("This is your avatar now: the face in the frame will speak your next answer.");
      loadGallery().catch(() => {});
      return;
    }
    const code = body.error && body.error.code;
    ac.avatarState.refused.push(code || String(status));
    if (status === 0) tell("The upload did not reach the server. Check the connection and try again.", true);
    else tell((code && REFUSED[code]) || (body.error && body.error.message) || `The server refused it (${status}).`, true);
  }

  fileInput.addEventListener("change", () => upload(fileInput.files[0]));
  cameraInput.addEventListener("change", () => upload(cameraInput.files[0]));
  // Drop a file on the stage (or on the open dialog's drop zone).
  for (const zone of [stage, $("dropzone")]) {
    zone.addEventListener("dragover", (ev) => {
      if (![...ev.dataTransfer.types].includes("Files")) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "copy";
      zone.classList.add("dropping");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dropping"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("dropping");
      upload(ev.dataTransfer.files[0]);
    });
  }

  openBtn.addEventListener("click", () => {
    dialog.showModal();
    loadGallery().catch(() => {});
  });
  $("avatarclose").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => openBtn.focus());

  loadGallery().catch(() => {});
})();
