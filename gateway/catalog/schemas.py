"""Response shapes of the catalog API. Items are `catalog.models.PublicItem` (fields fixed in docs/api.md#catalog)."""

from __future__ import annotations

import msgspec

from catalog.models import PublicItem, PublicMaterial

__all__ = ["ItemList", "PublicItem", "PublicMaterial"]


class ItemList(msgspec.Struct, kw_only=True):
    """``GET /api/v1/catalog/items``: the matching items (best match first when ``q`` is given) and their count."""

    items: list[PublicItem]
    total: int
