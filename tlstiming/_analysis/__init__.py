"""Events to phases, facts and certificates. Pure: timestamps are arguments."""
