"""The pipeline: join decisions with their delayed rewards, then learn from the joined examples."""
