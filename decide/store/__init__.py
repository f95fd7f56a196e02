"""SQL storage: the ORM models, the engine, and the queries the rest of decide needs."""
