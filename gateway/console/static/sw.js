// The patrol app's service worker: the app shell is served from the cache when the network
// is gone (a patrol car loses signal), and refreshed from the network whenever it is there.
// API calls and the WebSocket are never cached, except the road document (the street map's
// data: public OpenStreetMap roads, the same for every user), kept with its ETag so that a
// phone that reloads without signal still draws the streets.
const CACHE = "polewatch-patrol-v3";
const ROADS = "/api/console/map/roads";
const SHELL = [
  "/patrol/",
  "/patrol/manifest.webmanifest",
  "/console/static/patrol.css",
  "/console/static/patrol.js",
  "/console/static/common.js",
  "/console/static/i18n.js",
  "/i18n/catalogue.json",
  "/console/static/map.js",
  "/console/static/flatmap.js",
  "/console/static/vendor/maplibre-gl.mjs",
  // the map's worker, served inside this worker's scope (pages.py) so that it is controlled
  "/patrol/maplibre-gl-worker.mjs",
  "/console/static/vendor/maplibre-gl.css",
  "/console/static/icon.svg",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

/** The road document: asked again with the kept copy's ETag (a 304 answers with the copy),
 * kept when a new one comes, the kept copy when the network is gone. */
async function roads(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(ROADS, { ignoreSearch: true, ignoreVary: true });
  const headers = new Headers(request.headers);
  const etag = kept && kept.headers.get("ETag");
  if (etag) headers.set("If-None-Match", etag);
  let response;
  try {
    response = await fetch(new Request(request, { headers }));
  } catch (err) {
    if (kept) return kept;
    throw err;
  }
  if (response.status === 304 && kept) return kept;
  if (response.ok) await cache.put(ROADS, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname === ROADS) {
    event.respondWith(roads(event.request));
    return;
  }
  if (!SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true })),
  );
});
