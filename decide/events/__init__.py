"""Event schemas and the event log that carries them from the API to the pipeline."""
