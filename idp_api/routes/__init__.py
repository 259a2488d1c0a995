"""The API's routers: documents, search, graph, system (health, metrics), review page."""
