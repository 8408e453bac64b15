"""``polewatch bench map``: frame times of the street map while it pans, with and without
300 units moving on it, in headless Chromium (Debian's ``chromium``, WebGL through SwiftShader:
the CPU draws what a GPU would, so absolute figures are a floor, the ratio is the finding).

The bench serves the real gateway on a private redis-server, opens a page of its origin,
imports the map module (``/console/static/map.js``) as the pages do, and pans the map by a few
pixels every frame; the unit layer is drawn like the command centre's (a square per unit, its
id at street zoom) and every unit moves every frame, far more often than the live feed moves
them. ``requestAnimationFrame`` deltas give the frame times (p50/p95/p99, ms); ``ready_ms`` is
the time from creating the map to its first complete frame (the first case fetches the road
network; later ones revalidate it with its ETag).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any, Final

CHROMIUM: Final = Path("/usr/bin/chromium")
ARGS: Final = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # fmt: skip
UNITS: Final = 300
VIEW: Final = {"width": 1440, "height": 900}

PAN: Final = """async ([token, units, seconds, zoom]) => {
  const { StreetMap } = await import("/console/static/map.js");
  const host = document.createElement("div");
  host.style.cssText = "position:fixed;inset:0;z-index:9;background:#0a0e13";
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "position:absolute;inset:0;width:100%;height:100%;pointer-events:none";
  host.append(canvas);
  document.body.append(host);
  const opened = performance.now();
  const map = new StreetMap(canvas, { center: [114.03, 22.54], zoom, api: { token: () => token } });
  await new Promise((done) => map.gl.once("idle", done));
  const ready = performance.now() - opened;
  const fleet = Array.from({ length: units }, (_, i) => ({
    id: `P-${i}`, lon: 113.95 + Math.random() * 0.17, lat: 22.50 + Math.random() * 0.08,
    dlon: (Math.random() - 0.5) * 2e-5, dlat: (Math.random() - 0.5) * 2e-5 }));
  const draws = [];
  map.layers.push({ draw(ctx, m) {
    const begin = performance.now();
    const r = m.zoom >= 14 ? 4.5 : 3;
    ctx.font = "600 10px sans-serif";
    for (const u of fleet) {
      const [x, y] = m.toScreen(u.lon, u.lat);
      if (x < -10 || y < -10 || x > m.width + 10 || y > m.height + 10) continue;
      ctx.fillStyle = "#3fbf6f"; ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
      if (m.zoom >= 15.5) { ctx.fillStyle = "#d2dce8"; ctx.fillText(u.id, x + r + 3, y + 3); }
    }
    draws.push(performance.now() - begin);
  } });
  const deltas = [];
  await new Promise((done) => {
    let last = 0, start = 0, step = 0;
    const tick = (now) => {
      if (last) deltas.push(now - last); else start = now;
      last = now;
      for (const u of fleet) { u.lon += u.dlon; u.lat += u.dlat; }
      step += 1;
      map.gl.panBy([Math.sin(step / 40) * 6, Math.cos(step / 55) * 4], { duration: 0 });
      map.redraw();
      if (now - start < seconds * 1000) requestAnimationFrame(tick); else done();
    };
    requestAnimationFrame(tick);
  });
  host.remove();
  map.gl.remove();
  return [deltas, draws, ready];
}"""


def _figures(deltas: list[float]) -> dict[str, float]:
    ordered = sorted(deltas)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {
        "frames": len(ordered),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_fps": round(1000.0 / statistics.fmean(ordered), 1) if ordered else 0.0,
    }


async def _measure(seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from gateway.testing import operator_token, served_gateway
    from polewatch.embedded import EmbeddedRedis

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(Path(folder)) as redis:
        async with served_gateway(redis.url) as (host, port), async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page(
                    viewport={"width": VIEW["width"], "height": VIEW["height"]}
                )
                await page.goto(f"http://{host}:{port}/console/")
                token = operator_token("bench")
                for zoom, name in ((12.5, "city"), (16.0, "street")):
                    for units in (0, UNITS):
                        deltas, draws, ready = await page.evaluate(
                            PAN, [token, units, seconds, zoom]
                        )
                        results[f"{name}_{units}_units"] = {
                            **_figures(deltas),
                            "ready_ms": round(ready),
                            "unit_layer_p95_ms": _figures(draws)["p95_ms"] if units else 0.0,
                        }
                renderer = await page.evaluate(
                    "(() => { const g = document.createElement('canvas').getContext('webgl2');"
                    " const x = g && g.getExtension('WEBGL_debug_renderer_info');"
                    " return x ? g.getParameter(x.UNMASKED_RENDERER_WEBGL) : null })()"
                )
            finally:
                await browser.close()
    for name in ("city", "street"):
        without, moving = results[f"{name}_0_units"], results[f"{name}_{UNITS}_units"]
        results[f"{name}_p95_ratio_{UNITS}_vs_0"] = round(moving["p95_ms"] / without["p95_ms"], 2)
    results["renderer"] = renderer
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Pan the map for a few seconds per case (``args.quick``: 1 s, else 5 s)."""
    if not CHROMIUM.exists():
        raise SystemExit("polewatch bench map needs Debian's chromium: apt-get install chromium")
    seconds = 1.0 if getattr(args, "quick", False) else 5.0
    figures = asyncio.run(_measure(seconds))
    return {"bench": "map", "units": UNITS, "seconds_per_case": seconds, "viewport": VIEW,
            **figures}  # fmt: skip
