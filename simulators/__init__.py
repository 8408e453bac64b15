"""polewatch simulators."""
