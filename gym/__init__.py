"""The gym: repository mirrors and snapshots, patching, the test runner and the gates.

Nothing here knows about Temporal; `activities/` adapts it.
"""
