"""polewatch shared core: the wire model, key names, settings, the Redis connection and the
pole registry. Every service (edge, dispatcher, gateway, simulators, loadtest) builds on it."""

__version__ = "0.1.0"
