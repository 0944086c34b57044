"""The HTTP surface: one route table per resource, all under /api/v1."""
