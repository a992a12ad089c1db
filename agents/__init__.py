"""Policies: what decides the next change. No Temporal here; `activities/` calls these."""
