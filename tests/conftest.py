"""Shared pytest configuration: fixture modules of each area are registered as plugins here."""

from __future__ import annotations

pytest_plugins: list[str] = ["fixtures_lerobot", "fixtures_servers", "fixtures_reader"]
