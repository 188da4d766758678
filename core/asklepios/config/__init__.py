"""Experiment configs: the envelope model, loading (extends, --set) and two-phase validation."""
