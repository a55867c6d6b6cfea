"""Events owned by the exchange service (Love Supermarket; none yet)."""
