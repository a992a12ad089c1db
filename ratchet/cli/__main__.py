"""`python -m ratchet.cli`: the `ratchet` command (`ratchet demo` starts `ratchet up` so)."""

from ratchet.cli import main

main()
