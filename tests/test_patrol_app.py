"""The patrol app is an installable PWA: its page, manifest and service worker are served by
the gateway, and everything the worker caches as the app shell exists."""

from __future__ import annotations

import re

from gateway.testing import gateway_client


async def test_manifest_makes_the_patrol_page_installable(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        page = await (await client.get("/patrol/")).text()
        assert '<link rel="manifest" href="/patrol/manifest.webmanifest">' in page
        answer = await client.get("/patrol/manifest.webmanifest")
        assert answer.content_type == "application/manifest+json"
        manifest = await answer.json(content_type=None)
        assert manifest["start_url"] == "/patrol/" and manifest["scope"] == "/patrol/"
        assert manifest["display"] == "standalone"
        for icon in manifest["icons"]:
            assert (await client.get(icon["src"])).status == 200


async def test_service_worker_caches_an_app_shell_that_exists(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        worker = await client.get("/patrol/sw.js")
        assert worker.content_type == "text/javascript"
        assert worker.headers["Service-Worker-Allowed"] == "/patrol/"
        source = await worker.text()
        shell = re.findall(r'^\s*"(/[^"]*)",?$', source, flags=re.M)
        assert "/patrol/" in shell and "/console/static/patrol.js" in shell
        for path in shell:
            assert (await client.get(path)).status == 200, path
        assert "/patrol/maplibre-gl-worker.mjs" in shell
        # the worker caches no API answer but the road document, nor the live channel
        assert set(re.findall(r'"(/api/[^"]*)"', source)) == {"/api/console/map/roads"}
        assert "/ws" not in source


async def test_patrol_script_imports_only_files_that_are_served(redis_url: str) -> None:
    async with gateway_client(redis_url) as client:
        for name in ("patrol.js", "console.js"):
            source = await (await client.get(f"/console/static/{name}")).text()
            for imported in re.findall(r'from "\./([^"]+)"', source):
                assert (await client.get(f"/console/static/{imported}")).status == 200, imported
            assert ".innerHTML" not in source and "insertAdjacentHTML" not in source
