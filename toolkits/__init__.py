"""framelab.toolkits: models that run on frames."""
