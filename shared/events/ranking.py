"""Events owned by the ranking service (none yet)."""
