"""spreadbus: real-time pairs-trading analytics for crypto futures on a Redis event bus."""

__version__ = "0.1.0"
