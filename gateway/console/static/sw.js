// The patrol app's service worker: the app shell is served from the cache when the network
// is gone (a patrol car loses signal), and refreshed from the network whenever it is there.
// API calls and the WebSocket are never cached.
const CACHE = "polewatch-patrol-v2";
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
  "/console/static/vendor/maplibre-gl-worker.mjs",
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

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
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
