"""Node routes: the inventory with what is allocated on each node."""

from __future__ import annotations

from fastapi import APIRouter

from aip.control.usage import node_usage
from aip.server.deps import PlatformDep, SessionDep
from aip.server.schemas import NodeList, node_public

router = APIRouter(prefix="/nodes", tags=["nodes"])


@router.get("", response_model=NodeList)
def list_nodes(session: SessionDep, platform: PlatformDep) -> NodeList:
    usage = node_usage(session)
    return NodeList(items=[node_public(node, usage.get(node.name, {}))
                           for node in platform.nodes()])
