"""Recording: the ssl subclass, its connections, the message hook, the detach, delivery."""
