"""The orchestrator (data plane): the execute path's pure mappings and admission control."""

__all__: list[str] = []
