"""The command centre and the patrol app: pages, login, the live feed, map data, cameras and
reports, served by the gateway (installed by :func:`gateway.console.site.install`).

This package's ``__init__`` imports nothing, because :mod:`gateway.settings` imports
:mod:`gateway.console.settings`.
"""
