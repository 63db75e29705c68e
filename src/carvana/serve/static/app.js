// The cut-out page: photos in (chosen, dropped or pasted), one request at a time to
// POST /api/cutout, each answer shown over a checkerboard with a before/after slider.
"use strict";

const limits = { maxBytes: 25 * 2 ** 20, maxMegapixels: 40 };
const pending = [];
let busy = false;

const $ = (selector, root = document) => root.querySelector(selector);

function showNotice(text) {
  const notice = $("#notice");
  notice.textContent = text;
  notice.hidden = !text;
}

function megabytes(bytes) {
  return `${Number((bytes / 2 ** 20).toFixed(1))} MB`;
}

async function loadHealth() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    const health = await response.json();
    const chain = health.chain || {};
    const size = Array.isArray(chain.size) ? ` · photos run at ${chain.size.join("×")}` : "";
    const flips = chain.tta_hflip ? " · with flips" : "";
    $("#model").textContent = `Model: ${chain.source ?? "?"} · ${health.backend ?? "?"} ` +
      `${health.precision ?? ""}${size}${flips}`;
    limits.maxBytes = health.limits.max_upload_bytes;
    limits.maxMegapixels = health.limits.max_megapixels;
    $("#limits").textContent = `JPEG or PNG photos up to ${megabytes(limits.maxBytes)} and ` +
      `${limits.maxMegapixels} megapixels. Nothing is stored: each photo is cut out in ` +
      "memory and sent back.";
  } catch (err) {
    $("#model").textContent = "";
    showNotice(`The server did not answer /healthz (${err.message}). Is carvana-serve running?`);
  }
}

function newCard(file) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = file.name || "pasted photo";
  const compare = $(".compare", card);
  const split = $(".split", card);
  split.addEventListener("input", () => compare.style.setProperty("--split", `${split.value}%`));
  $("#results").append(card);
  return card;
}

function setStatus(card, state, text) {
  card.dataset.state = state;
  $(".status", card).textContent = text;
}

function stem(name) {
  const base = (name || "photo").replace(/\.[^.]*$/, "");
  return base.replace(/[^\w.()+-]+/g, "_") || "photo";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// POST the photo; on 503 wait as told (Retry-After) and try again, a few times.
async function send(card, file) {
  for (let attempt = 1; ; attempt += 1) {
    const form = new FormData();
    form.append("image", file, file.name || "pasted.png");
    const response = await fetch("/api/cutout", { method: "POST", body: form });
    if (response.status !== 503 || attempt >= 6) return response;
    const wait = Math.min(Number(response.headers.get("Retry-After")) || 2, 30);
    setStatus(card, "working", `The server is busy; trying again in ${wait} s…`);
    await sleep(wait * 1000);
    setStatus(card, "working", "Cutting out…");
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (err) { /* not JSON: fall through */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function process(card, file) {
  if (file.size > limits.maxBytes) {
    setStatus(card, "error", `${file.name}: ${megabytes(file.size)} is more than the ` +
      `${megabytes(limits.maxBytes)} allowed; shrink the photo first.`);
    return;
  }
  const compare = $(".compare", card);
  const before = $(".before", card);
  before.src = URL.createObjectURL(file);
  before.onload = () => { if (card.dataset.state !== "error") compare.hidden = false; };
  compare.classList.add("pending");
  setStatus(card, "working", `Cutting out… (${megabytes(file.size)})`);
  const started = performance.now();
  let response;
  try {
    response = await send(card, file);
  } catch (err) {
    setStatus(card, "error", `The server did not answer (${err.message}). Is it still running?`);
    return;
  }
  if (!response.ok) {
    setStatus(card, "error", `Could not cut out this photo: ${await errorText(response)}`);
    compare.hidden = true;
    return;
  }
  const blob = await response.blob();
  const elapsed = (performance.now() - started) / 1000;
  await showCutout(card, file, blob, response.headers, elapsed);
}

async function showCutout(card, file, blob, headers, elapsed) {
  const compare = $(".compare", card);
  const cutout = $(".cutout", card);
  cutout.src = URL.createObjectURL(blob);
  await cutout.decode();
  compare.classList.remove("pending");
  compare.hidden = false;
  $(".slider", card).hidden = false;
  const share = Number(headers.get("X-Car-Share"));
  const server = Number(headers.get("X-Cutout-Seconds"));
  const queued = Number(headers.get("X-Queue-Seconds"));
  const size = headers.get("X-Photo-Size") || `${cutout.naturalWidth}x${cutout.naturalHeight}`;
  const waited = queued >= 0.05 ? `, after ${queued.toFixed(1)} s in the queue` : "";
  const stats = $(".stats", card);
  stats.replaceChildren();
  for (const line of [
    `The car covers ${(share * 100).toFixed(1)}% of the ${size.replace("x", "×")} photo.`,
    `Cut out in ${server.toFixed(2)} s on the server${waited}; ${elapsed.toFixed(2)} s in all.`,
  ]) {
    const span = document.createElement("span");
    span.textContent = line;
    stats.append(span);
  }
  const name = stem(file.name);
  const png = $(".png", card);
  png.href = cutout.src;
  png.download = `${name}.png`;
  const mask = $(".mask", card);
  mask.href = URL.createObjectURL(await maskPng(blob));
  mask.download = `${name}_mask.png`;
  $(".downloads", card).hidden = false;
  setStatus(card, "done", "Done");
}

// The mask as an 8-bit grey PNG (0/255), the same file as ?output=mask, made from the
// cut-out's alpha here instead of a second run of the models.
async function maskPng(blob) {
  const bitmap = await createImageBitmap(blob, {
    premultiplyAlpha: "none", colorSpaceConversion: "none",
  });
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  const rows = new Uint8Array((width + 1) * height);  // filter byte 0, then the row
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) rows[y * (width + 1) + 1 + x] = rgba[(y * width + x) * 4 + 3];
  }
  const stream = new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(stream).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;  // bit depth; colour type 0 (grey), no interlace
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  return new Blob([signature, pngChunk("IHDR", header), pngChunk("IDAT", idat),
    pngChunk("IEND", new Uint8Array(0))], { type: "image/png" });
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function pngChunk(type, data) {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode(type), 4);
  chunk.set(data, 8);
  let crc = 0xffffffff;
  for (let i = 4; i < 8 + data.length; i += 1) crc = CRC_TABLE[(crc ^ chunk[i]) & 0xff] ^ (crc >>> 8);
  view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
  return chunk;
}

// One photo at a time: the server's queue is shared with everyone else.
async function pump() {
  if (busy) return;
  busy = true;
  while (pending.length) {
    const { card, file } = pending.shift();
    try {
      await process(card, file);
    } catch (err) {
      setStatus(card, "error", `Something went wrong on this page: ${err.message}`);
    }
  }
  busy = false;
}

function addFiles(files) {
  const list = Array.from(files || []);
  if (!list.length) return;
  showNotice("");
  for (const file of list) pending.push({ card: newCard(file), file });
  pump();
}

function wireInputs() {
  const drop = $("#drop");
  const input = $("#files");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) drop.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const files = event.dataTransfer ? event.dataTransfer.files : [];
    if (!files.length) showNotice("Nothing to cut out in what was dropped: drop photo files.");
    addFiles(files);
  });
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? event.clipboardData.files : [];
    addFiles(files);
  });
}

wireInputs();
loadHealth();
