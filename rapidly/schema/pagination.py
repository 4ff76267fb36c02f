"""Relay-style connections shared by every paginated list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

N = TypeVar("N")
DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo

    @classmethod
    def of(cls, rows: Sequence[object], has_next: bool, cursor: Callable, node: Callable) -> Connection:  # type: ignore[type-arg]
        edges = [Edge(cursor=cursor(row), node=node(row)) for row in rows]
        return cls(
            edges=edges, page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None)
        )
