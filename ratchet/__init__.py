"""Ratchet: settings, telemetry, the artifact store and the command line."""
