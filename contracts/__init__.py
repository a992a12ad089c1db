"""The contracts at the bottom: every workflow, activity, signal and update input and output,
and the activity names (stdlib and dataclasses only; nothing here imports another layer)."""
