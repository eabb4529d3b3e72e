"""Lectern's stacks: Data (kept while paused), Search, Service (API, ingestion, models, monitoring), Web."""
