"""The gate: a FastAPI app in front of Temporal."""
