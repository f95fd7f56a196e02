"""decide: a self-hostable online contextual-bandit decision service."""

__version__ = "0.1.0"
