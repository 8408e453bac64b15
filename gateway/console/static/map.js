// The street map of the command centre and the patrol app, on MapLibre GL JS (vendored,
// ./vendor/VENDOR.md). MapLibre draws the base map in WebGL from the gateway's own data: the
// road network with its Chinese names (labels drawn from the system's fonts: no glyph server),
// district outlines and names, grids, poles and routes. The live layers (incidents, units,
// cameras) are drawn on a transparent canvas above it, in step with every MapLibre frame,
// by plain functions layer.draw(ctx, map, now): hundreds of moving units cost a redraw of that
// canvas, never a re-tiling of a map source.
//
// Zoom levels follow the 256-pixel tile convention of the pages (MapLibre's own are one less).

import { Map as MapLibre, AttributionControl, setWorkerUrl } from "./vendor/maplibre-gl.mjs";
import { t, tOr } from "./i18n.js";
import {
  CanvasMap, GRID_ZOOM, POLE_ZOOM, districtLayer as flatDistricts, gridLayer as flatGrids,
  poleLayer as flatPoles, routeLayer as flatRoutes,
} from "./flatmap.js";

export { GRID_ZOOM, POLE_ZOOM };
const LABEL_ZOOM = 17.5;
const Z = 1; // our zoom = MapLibre's zoom + Z (512-pixel tiles there, 256 here)
const OSM = "© OpenStreetMap contributors";
const FONT = ["Noto Sans CJK SC", "Noto Sans", "sans-serif"];
const EMPTY = { type: "FeatureCollection", features: [] };
const ROUTE_COLOR = "#6cb6ff";

// Road classes, widest first: [classes, colour, width at our zoom 12, at 18, drawn from zoom].
const ROADS = [
  ["motorway", ["motorway", "trunk"], "#b08a4a", 1.6, 12, 8],
  ["primary", ["primary", "motorway_link", "trunk_link"], "#6c7b8d", 1.1, 10, 9],
  ["secondary", ["secondary", "tertiary", "primary_link", "secondary_link"], "#4f5c6b", 0.7, 8, 11],
  ["minor", ["tertiary_link", "unclassified", "residential", "service", "road"], "#3b4653", 0.4, 6, 13],
];

/** A message of the catalogue, or its English text until the page has loaded a catalogue. */
function say(key, english, params = {}) {
  const text = tOr(key, null);
  if (text !== null) return t(key, params);
  return english.replace(/\{([a-z_]+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** "2.1 km by road, about 4 min" from a road distance (m) and time (s). */
export function roadText(distanceM, etaS) {
  const distance = distanceM >= 1000 ? say("common.km", "{n} km", { n: (distanceM / 1000).toFixed(1) })
    : say("common.m", "{n} m", { n: Math.round(distanceM / 10) * 10 });
  const minutes = Math.max(1, Math.round(etaS / 60));
  return say("map.by_road", "{distance} by road, about {minutes} min", { distance, minutes });
}

function style(tileUrl) {
  const width = (w12, w18) => ["interpolate", ["exponential", 1.6], ["zoom"], 12 - Z, w12, 18 - Z, w18];
  const sources = {
    roads: { type: "geojson", data: new URL("/api/console/map/roads", location.href).href, attribution: OSM, tolerance: 0.45 },
    districts: { type: "geojson", data: EMPTY },
    "district-names": { type: "geojson", data: EMPTY },
    grids: { type: "geojson", data: EMPTY },
    poles: { type: "geojson", data: EMPTY },
    routes: { type: "geojson", data: EMPTY },
  };
  const layers = [{ id: "land", type: "background", paint: { "background-color": "#0a0e13" } }];
  if (tileUrl) {
    sources.tiles = { type: "raster", tiles: [tileUrl], tileSize: 256 };
    layers.push({ id: "tiles", type: "raster", source: "tiles", paint: { "raster-opacity": 0.55 } });
  }
  layers.push(
    { id: "district-fill", type: "fill", source: "districts", paint: { "fill-color": "rgba(88,110,140,0.07)" } },
    { id: "grids", type: "line", source: "grids", minzoom: GRID_ZOOM - Z, paint: { "line-color": "rgba(110,140,175,0.16)", "line-width": 1 } },
  );
  for (const [id, classes, color, w12, w18, from] of [...ROADS].reverse()) {
    layers.push({
      id: `road-${id}`, type: "line", source: "roads", minzoom: from - Z,
      filter: ["in", ["get", "highway"], ["literal", classes]],
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": color, "line-width": width(w12, w18) },
    });
  }
  layers.push(
    { id: "district-line", type: "line", source: "districts", paint: { "line-color": "rgba(120,150,190,0.55)", "line-width": 1.2 } },
    { id: "routes", type: "line", source: "routes", layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": ROUTE_COLOR, "line-width": width(3, 7), "line-opacity": 0.85 } },
    { id: "poles", type: "circle", source: "poles", minzoom: POLE_ZOOM - Z,
      paint: { "circle-radius": 1.8, "circle-color": "rgba(160,175,195,0.6)" } },
    { id: "road-names", type: "symbol", source: "roads", minzoom: 13 - Z,
      filter: ["all", ["!=", ["get", "name"], ""], ["!=", ["get", "name"], "支路"]],
      layout: { "symbol-placement": "line", "text-field": ["get", "name"], "text-font": FONT,
        "text-size": ["interpolate", ["linear"], ["zoom"], 13 - Z, 11, 18 - Z, 15], "symbol-spacing": 320 },
      paint: { "text-color": "#c9d4e0", "text-halo-color": "#0a0e13", "text-halo-width": 1.6 } },
    { id: "pole-codes", type: "symbol", source: "poles", minzoom: LABEL_ZOOM - Z,
      layout: { "text-field": ["get", "code"], "text-font": FONT, "text-size": 10, "text-anchor": "left", "text-offset": [0.5, -0.6] },
      paint: { "text-color": "rgba(150,165,185,0.8)" } },
    { id: "district-names", type: "symbol", source: "district-names", maxzoom: 14.5 - Z,
      layout: { "text-field": ["get", "label"], "text-font": FONT, "text-size": 13, "text-allow-overlap": true },
      paint: { "text-color": "rgba(160,180,210,0.7)", "text-halo-color": "#0a0e13", "text-halo-width": 1.2 } },
  );
  return { version: 8, sources, layers };
}

/** The map: MapLibre below, the live layers' canvas above. ``canvas`` is the page's map
 *  element (it stays the overlay, so the pages' data attributes and labels stay on it). */
export class StreetMap {
  constructor(canvas, { center = [114.06, 22.56], zoom = 11, minZoom = 8, maxZoom = 19, tileUrl = "", api = null,
    workerUrl = "" } = {}) {
    // The patrol app loads the map's worker from inside its service worker's scope, so that
    // the worker (and the road document it fetches) works offline (see sw.js).
    if (workerUrl) setWorkerUrl(new URL(workerUrl, location.href).href);
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.layers = [];
    this.onclick = null;
    this.onview = null;
    this.dirty = true;
    this.where = center;
    const box = document.createElement("div");
    box.className = "streets";
    canvas.before(box);
    canvas.classList.add("overlay");
    this.box = box;
    try {
      this.gl = new MapLibre({
        container: box, style: style(tileUrl), center, zoom: zoom - Z, minZoom: minZoom - Z, maxZoom: maxZoom - Z,
        attributionControl: false, dragRotate: false, pitchWithRotate: false, touchPitch: false, fadeDuration: 0,
        localIdeographFontFamily: FONT.join(", "),
        transformRequest: (url) => (api && api.token() && new URL(url).origin === location.origin
          ? { url, headers: { Authorization: `Bearer ${api.token()}` } } : { url }),
      });
    } catch (err) { // no WebGL2 here: leave the page as it was (see openMap)
      box.remove();
      canvas.classList.remove("overlay");
      throw err;
    }
    this.gl.touchZoomRotate.disableRotation();
    this.gl.keyboard.disableRotation();
    this.gl.addControl(new AttributionControl({ compact: false, customAttribution: OSM }), "bottom-right");
    this.gl.on("render", () => this.paint(performance.now()));
    this.gl.on("move", () => { this.dirty = true; });
    this.gl.on("moveend", () => this.viewed());
    this.gl.on("load", () => { this.redraw(true); });
    this.gl.on("click", (e) => this.onclick && this.onclick(e.point.x, e.point.y, e.originalEvent));
    this.gl.on("sourcedata", (e) => {
      if (e.sourceId === "roads" && e.isSourceLoaded && !canvas.dataset.roads) canvas.dataset.roads = "loaded";
    });
    // For the browser tests and the frame-time bench (they read MapLibre's rendered features).
    canvas.streetMap = this;
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  get width() { return this.box.clientWidth || 1; }
  get height() { return this.box.clientHeight || 1; }
  get zoom() { return this.gl.getZoom() + Z; }

  /** [lon, lat] of the middle; the same array for as long as the view has not moved. */
  get center() {
    const c = this.gl.getCenter();
    if (Math.abs(c.lng - this.where[0]) > 1e-9 || Math.abs(c.lat - this.where[1]) > 1e-9) this.where = [c.lng, c.lat];
    return this.where;
  }

  /** Screen position (CSS pixels) of lon/lat. */
  toScreen(lon, lat) {
    const p = this.gl.project([lon, lat]);
    return [p.x, p.y];
  }

  toLonLat(sx, sy) {
    const p = this.gl.unproject([sx, sy]);
    return [p.lng, p.lat];
  }

  /** [west, south, east, north] of what is on screen. */
  bounds(margin = 0) {
    const [w, n] = this.toLonLat(-margin, -margin);
    const [e, s] = this.toLonLat(this.width + margin, this.height + margin);
    return [w, s, e, n];
  }

  resize() {
    this.gl.resize();
    this.redraw(true);
  }

  /** Draw the live layers again at the next frame; ``viewChanged``: tell ``onview`` too. */
  redraw(viewChanged = false) {
    this.dirty = true;
    if (viewChanged) this.viewed();
  }

  viewed() {
    clearTimeout(this.viewTimer);
    if (this.onview) this.viewTimer = setTimeout(() => this.onview(this), 200);
  }

  setView(center, zoom = this.zoom) {
    this.gl.jumpTo({ center, zoom: zoom - Z });
  }

  zoomAt(sx, sy, delta) {
    this.gl.easeTo({ zoom: this.gl.getZoom() + delta, around: this.gl.unproject([sx, sy]), duration: 180 });
  }

  panBy(dx, dy) {
    this.gl.panBy([-dx, -dy], { duration: 0 });
  }

  /** Centre on the points and zoom so they all show, with ``pad`` pixels around them. */
  fit(points, pad = 60, maxZoom = 17) {
    const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
    const padding = Math.max(0, Math.min(pad, this.width / 4, this.height / 4));
    this.gl.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]],
      { padding, maxZoom: maxZoom - Z, duration: 0 });
  }

  /** Replace the data of one of the base map's sources; false until the map has loaded. */
  setData(source, data) {
    const found = this.gl.getSource(source);
    if (!found) return false;
    found.setData(data);
    return true;
  }

  frame(now) {
    if (this.dirty || this.layers.some((l) => l.animated && l.animated(now))) this.paint(now);
    requestAnimationFrame(this.frame);
  }

  paint(now) {
    this.dirty = false;
    const ratio = window.devicePixelRatio || 1;
    const w = this.width, h = this.height;
    if (this.canvas.width !== Math.round(w * ratio) || this.canvas.height !== Math.round(h * ratio)) {
      this.canvas.width = Math.round(w * ratio);
      this.canvas.height = Math.round(h * ratio);
    }
    const ctx = this.ctx;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    for (const layer of this.layers) {
      if (layer.sync) layer.sync(this);
      else layer.draw(ctx, this, now);
    }
  }
}

/** The street map, or where the browser has no WebGL2 the flat canvas map (districts, grids,
 *  poles, routes and the live layers; no streets) with a notice saying so. */
export function openMap(canvas, options = {}) {
  try {
    return new StreetMap(canvas, options);
  } catch (err) {
    console.warn("street map unavailable, drawing the flat map:", err.message);
    const map = new CanvasMap(canvas, options);
    canvas.dataset.map = "flat";
    const notice = say("map.no_webgl", "No street map: this browser has no WebGL2");
    map.layers.push({
      draw(ctx, m) {
        ctx.font = "11px sans-serif";
        ctx.textAlign = "right";
        ctx.fillStyle = "rgba(150,165,185,0.8)";
        ctx.fillText(notice, m.width - 8, m.height - 8);
      },
    });
    return map;
  }
}

/** A base-map layer fed from the page's state: ``get()`` is looked at every frame and the
 *  source is replaced when it returns another object. */
function baseLayer(get, update) {
  let last = null;
  return {
    sync(map) {
      const value = get();
      if (value && value !== last && update(map, value)) last = value;
    },
  };
}

/** A base-map layer that the flat map (no WebGL) draws itself with ``flat.draw``. */
const withFlat = (flat, get, update) => ({ ...baseLayer(get, update), draw: flat.draw });

const point = (lon, lat, properties) => ({ type: "Feature", properties, geometry: { type: "Point", coordinates: [lon, lat] } });

/** District outlines and names from a GeoJSON FeatureCollection. */
export function districtLayer(getGeojson) {
  return withFlat(flatDistricts(getGeojson), getGeojson, (map, geo) => map.setData("districts", geo) && map.setData("district-names", {
    type: "FeatureCollection",
    features: geo.features.map((f) => point(...f.properties.label, {
      label: f.properties.chinese ? `${f.properties.chinese}\n${f.properties.name}` : f.properties.name,
    })),
  }));
}

/** Responsibility-grid outlines (from /api/console/map/grids), at street zooms. */
export function gridLayer(getGrids) {
  return withFlat(flatGrids(getGrids), getGrids, (map, grids) => map.setData("grids", {
    type: "FeatureCollection",
    features: grids.map((g) => ({ type: "Feature", properties: { id: g.id },
      geometry: { type: "Polygon", coordinates: [[...g.outline, g.outline[0]]] } })),
  }));
}

/** Poles ([code, lon, lat, ...] from /api/console/map/poles), codes when zoomed right in. */
export function poleLayer(getPoles) {
  return withFlat(flatPoles(getPoles), getPoles, (map, poles) => map.setData("poles", {
    type: "FeatureCollection", features: poles.map(([code, lon, lat]) => point(lon, lat, { code })),
  }));
}

/** Routes ([[lon, lat], ...] each, as /api/route answers them) drawn along the streets. */
export function routeLayer(getRoutes) {
  return withFlat(flatRoutes(getRoutes), getRoutes, (map, routes) => map.setData("routes", {
    type: "FeatureCollection",
    features: routes.filter((c) => c && c.length > 1)
      .map((coords) => ({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: coords } })),
  }));
}

/** The road route between two places: {distance_m, eta_s, source, coords}, or null when the
 *  gateway cannot answer (no road network, offline). */
export async function fetchRoute(api, from, to) {
  const where = (p) => `${p[0].toFixed(6)},${p[1].toFixed(6)}`;
  try {
    return await api.get(`/api/route?from=${where(from)}&to=${where(to)}`);
  } catch {
    return null;
  }
}

/** Fetch the grids and poles of what the map shows into ``into`` ({grids, poles}). */
export async function loadStreets(api, map, into) {
  const bbox = map.bounds(80).map((v) => v.toFixed(5)).join(",");
  try {
    into.grids = map.zoom >= GRID_ZOOM ? (await api.get(`/api/console/map/grids?bbox=${bbox}`)).grids : [];
    into.poles = map.zoom >= POLE_ZOOM ? (await api.get(`/api/console/map/poles?bbox=${bbox}`)).poles : [];
    map.canvas.dataset.poles = String(into.poles.length);
  } catch {
    // zoomed out too far, or offline: the map draws what it has
  }
  map.redraw();
}
