"""Exports of incidents for other agencies: OASIS CAP 1.2 XML and NENA EIDO JSON."""

from __future__ import annotations

from analytics.exports.cap import DEFAULT_OPTIONS, ExportOptions, cap_xml
from analytics.exports.eido import eido_json, eido_object

__all__ = ["DEFAULT_OPTIONS", "ExportOptions", "cap_xml", "eido_json", "eido_object"]
