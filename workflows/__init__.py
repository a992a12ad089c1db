"""Workflows: the deterministic controller. Orchestration only; no I/O here."""
