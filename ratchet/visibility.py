"""Ratchet's search attributes on a Temporal namespace: are they there, and adding them.

`ratchet up` registers them on its dev server (`--search-attribute` flags) and on a cluster
given by TEMPORAL_ADDRESS; starters check once per namespace before tagging runs with them, so
a namespace without them still runs everything (only the filters are missing).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from ratchet import search_keys as search

log = logging.getLogger("ratchet.visibility")
_ready: set[tuple[str, str]] = set()


def dev_server_flags() -> list[str]:
    return [part for key in search.ALL for part in ("--search-attribute", f"{key.name}=Keyword")]


async def _missing(client: Client) -> list[str]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace), timeout=timedelta(seconds=5)
    )
    return [key.name for key in search.ALL if key.name not in listed.custom_attributes]


async def search_attributes_ready(client: Client) -> bool:
    """Whether every Ratchet attribute exists on the client's namespace (cached once true)."""
    where = (client.service_client.config.target_host, client.namespace)
    if where in _ready:
        return True
    try:
        missing = await _missing(client)
    except RPCError as err:
        log.warning("cannot list search attributes (%s): runs are started without them", err)
        return False
    if not missing:
        _ready.add(where)
    return not missing


async def register_search_attributes(client: Client) -> list[str]:
    """Add the missing ones; returns their names."""
    missing = await _missing(client)
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes=dict.fromkeys(
                    missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                ),
            )
        )
    return missing
