"""Activities: thin Temporal adapters over the gym and the agents."""
