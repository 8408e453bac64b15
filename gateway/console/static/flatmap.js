// The map without WebGL: a 2D canvas, Web Mercator, pan and zoom by mouse, wheel and touch
// (pinch). ./map.js falls back to it where the browser has no WebGL2 (the street map's
// MapLibre needs it): districts, grids, poles, routes and the live layers still show, the
// streets do not. Layers are plain functions drawing with the map's projection.

const TILE = 256;
const MAX_LAT = 85.05112878;

export function project(lon, lat, zoom) {
  const scale = TILE * 2 ** zoom;
  const s = Math.sin((Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180);
  return [((lon + 180) / 360) * scale, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * scale];
}

export function unproject(x, y, zoom) {
  const scale = TILE * 2 ** zoom;
  const lon = (x / scale) * 360 - 180;
  const n = Math.PI - (2 * Math.PI * y) / scale;
  return [lon, (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)))];
}

export class CanvasMap {
  constructor(canvas, { center = [114.06, 22.56], zoom = 11, minZoom = 8, maxZoom = 19, tileUrl = "" } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.center = center;
    this.zoom = zoom;
    this.minZoom = minZoom;
    this.maxZoom = maxZoom;
    this.tileUrl = tileUrl;
    this.tiles = new Map();
    this.layers = [];
    this.onclick = null;
    this.onview = null;
    this.pointers = new Map();
    this.dirty = true;
    this.frame = this.frame.bind(this);
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement || canvas);
    this.bind();
    requestAnimationFrame(this.frame);
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.width * ratio);
    this.canvas.height = Math.round(this.height * ratio);
    this.ratio = ratio;
    this.redraw(true);
  }

  /** Screen position (CSS pixels) of lon/lat. */
  toScreen(lon, lat) {
    const [x, y] = project(lon, lat, this.zoom);
    const [cx, cy] = project(this.center[0], this.center[1], this.zoom);
    return [x - cx + this.width / 2, y - cy + this.height / 2];
  }

  toLonLat(sx, sy) {
    const [cx, cy] = project(this.center[0], this.center[1], this.zoom);
    return unproject(cx + sx - this.width / 2, cy + sy - this.height / 2, this.zoom);
  }

  /** [west, south, east, north] of what is on screen. */
  bounds(margin = 0) {
    const [w, n] = this.toLonLat(-margin, -margin);
    const [e, s] = this.toLonLat(this.width + margin, this.height + margin);
    return [w, s, e, n];
  }

  redraw(viewChanged = false) {
    this.dirty = true;
    if (viewChanged && this.onview) {
      clearTimeout(this.viewTimer);
      this.viewTimer = setTimeout(() => this.onview(this), 200);
    }
  }

  setView(center, zoom = this.zoom) {
    this.center = center;
    this.zoom = Math.max(this.minZoom, Math.min(this.maxZoom, zoom));
    this.redraw(true);
  }

  zoomAt(sx, sy, delta) {
    const before = this.toLonLat(sx, sy);
    this.zoom = Math.max(this.minZoom, Math.min(this.maxZoom, this.zoom + delta));
    const [bx, by] = project(before[0], before[1], this.zoom);
    this.center = unproject(bx - sx + this.width / 2, by - sy + this.height / 2, this.zoom);
    this.redraw(true);
  }

  panBy(dx, dy) {
    const [cx, cy] = project(this.center[0], this.center[1], this.zoom);
    this.center = unproject(cx - dx, cy - dy, this.zoom);
    this.redraw(true);
  }

  bind() {
    const c = this.canvas;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      this.zoomAt(e.clientX - r.left, e.clientY - r.top, -Math.sign(e.deltaY) * (e.ctrlKey ? 0.25 : 0.5));
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => {
      c.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY });
    });
    c.addEventListener("pointermove", (e) => {
      const p = this.pointers.get(e.pointerId);
      if (!p) return;
      if (this.pointers.size === 1) {
        this.panBy(e.clientX - p.x, e.clientY - p.y);
      } else if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const before = Math.hypot(a.x - b.x, a.y - b.y);
        p.x = e.clientX; p.y = e.clientY;
        const after = Math.hypot(a.x - b.x, a.y - b.y);
        const r = c.getBoundingClientRect();
        if (before > 0 && after > 0) this.zoomAt((a.x + b.x) / 2 - r.left, (a.y + b.y) / 2 - r.top, Math.log2(after / before));
        return;
      }
      p.x = e.clientX; p.y = e.clientY;
    });
    const up = (e) => {
      const p = this.pointers.get(e.pointerId);
      this.pointers.delete(e.pointerId);
      if (p && this.pointers.size === 0 && Math.hypot(e.clientX - p.x0, e.clientY - p.y0) < 5 && this.onclick) {
        const r = c.getBoundingClientRect();
        this.onclick(e.clientX - r.left, e.clientY - r.top, e);
      }
    };
    c.addEventListener("pointerup", up);
    c.addEventListener("pointercancel", (e) => this.pointers.delete(e.pointerId));
    c.addEventListener("dblclick", (e) => {
      const r = c.getBoundingClientRect();
      this.zoomAt(e.clientX - r.left, e.clientY - r.top, e.shiftKey ? -1 : 1);
    });
  }

  frame(now) {
    if (this.dirty || this.layers.some((l) => l.animated && l.animated())) {
      this.dirty = false;
      const ctx = this.ctx;
      ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
      ctx.clearRect(0, 0, this.width, this.height);
      if (this.tileUrl) this.drawTiles(ctx);
      for (const layer of this.layers) layer.draw(ctx, this, now);
    }
    requestAnimationFrame(this.frame);
  }

  drawTiles(ctx) {
    const z = Math.max(0, Math.min(19, Math.round(this.zoom)));
    const scale = 2 ** (this.zoom - z);
    const [cx, cy] = project(this.center[0], this.center[1], z);
    const left = cx - this.width / 2 / scale, top = cy - this.height / 2 / scale;
    const n = 2 ** z;
    for (let tx = Math.floor(left / TILE); tx <= Math.floor((left + this.width / scale) / TILE); tx++) {
      for (let ty = Math.floor(top / TILE); ty <= Math.floor((top + this.height / scale) / TILE); ty++) {
        if (ty < 0 || ty >= n) continue;
        const key = `${z}/${((tx % n) + n) % n}/${ty}`;
        let img = this.tiles.get(key);
        if (!img) {
          img = new Image();
          img.onload = () => this.redraw();
          const [zz, xx, yy] = key.split("/");
          img.src = this.tileUrl.replace("{z}", zz).replace("{x}", xx).replace("{y}", yy);
          this.tiles.set(key, img);
          if (this.tiles.size > 400) this.tiles.delete(this.tiles.keys().next().value);
        }
        if (img.complete && img.naturalWidth) {
          ctx.globalAlpha = 0.55;
          ctx.drawImage(img, (tx * TILE - left) * scale, (ty * TILE - top) * scale, TILE * scale + 0.5, TILE * scale + 0.5);
          ctx.globalAlpha = 1;
        }
      }
    }
  }

  /** Centre on the points and zoom so they all show, with ``pad`` pixels around them. */
  fit(points, pad = 60, maxZoom = 17) {
    const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
    const [x0, y0] = project(Math.min(...lons), Math.max(...lats), 0);
    const [x1, y1] = project(Math.max(...lons), Math.min(...lats), 0);
    const span = Math.max((x1 - x0) / Math.max(1, this.width - 2 * pad), (y1 - y0) / Math.max(1, this.height - 2 * pad));
    const zoom = span > 0 ? Math.log2(1 / span) : maxZoom;
    this.setView([(Math.min(...lons) + Math.max(...lons)) / 2, (Math.min(...lats) + Math.max(...lats)) / 2], Math.min(maxZoom, zoom));
  }

  /** Trace a ring of [lon, lat] points as a path. */
  trace(ctx, ring) {
    let first = true;
    for (const [lon, lat] of ring) {
      const [x, y] = this.toScreen(lon, lat);
      if (first) { ctx.moveTo(x, y); first = false; } else ctx.lineTo(x, y);
    }
    ctx.closePath();
  }
}

/** District outlines and names from a GeoJSON FeatureCollection. */
export function districtLayer(getGeojson) {
  return {
    draw(ctx, map) {
      const geo = getGeojson();
      if (!geo) return;
      ctx.lineJoin = "round";
      for (const f of geo.features) {
        const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
        ctx.beginPath();
        for (const poly of polys) for (const ring of poly) map.trace(ctx, ring);
        ctx.fillStyle = "rgba(88,110,140,0.07)";
        ctx.fill("evenodd");
        ctx.strokeStyle = "rgba(120,150,190,0.55)";
        ctx.lineWidth = 1.2;
        ctx.stroke();
      }
      if (map.zoom < 14.5) {
        ctx.font = "600 12px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.fillStyle = "rgba(150,170,200,0.55)";
        for (const f of geo.features) {
          const [x, y] = map.toScreen(...f.properties.label);
          ctx.fillText(f.properties.name.toUpperCase(), x, y);
        }
      }
    },
  };
}

export const GRID_ZOOM = 14;
export const POLE_ZOOM = 15;

/** Responsibility-grid outlines (from /api/console/map/grids), at street zooms. */
export function gridLayer(getGrids) {
  return {
    draw(ctx, map) {
      const grids = getGrids();
      if (map.zoom < GRID_ZOOM || !grids.length) return;
      ctx.strokeStyle = "rgba(110,140,175,0.16)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const g of grids) map.trace(ctx, g.outline);
      ctx.stroke();
    },
  };
}

/** Routes ([[lon, lat], ...] each) as lines. */
export function routeLayer(getRoutes) {
  return {
    draw(ctx, map) {
      ctx.strokeStyle = "rgba(108,182,255,0.85)";
      ctx.lineWidth = 4;
      ctx.lineJoin = "round";
      for (const coords of getRoutes() || []) {
        ctx.beginPath();
        coords.forEach(([lon, lat], i) => { const [x, y] = map.toScreen(lon, lat); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
        ctx.stroke();
      }
    },
  };
}

/** Poles ([code, lon, lat, ...] from /api/console/map/poles), codes when zoomed right in. */
export function poleLayer(getPoles) {
  return {
    draw(ctx, map) {
      if (map.zoom < POLE_ZOOM) return;
      const poles = getPoles();
      ctx.fillStyle = "rgba(160,175,195,0.5)";
      for (const [, lon, lat] of poles) {
        const [x, y] = map.toScreen(lon, lat);
        if (x < -5 || y < -5 || x > map.width + 5 || y > map.height + 5) continue;
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
      if (map.zoom < 17.5) return;
      ctx.font = "10px system-ui, sans-serif";
      ctx.fillStyle = "rgba(150,165,185,0.7)";
      ctx.textAlign = "left";
      for (const [code, lon, lat] of poles) {
        const [x, y] = map.toScreen(lon, lat);
        if (x > -40 && y > -10 && x < map.width && y < map.height + 10) ctx.fillText(code, x + 4, y - 3);
      }
    },
  };
}
