"""A certificate as ``connectors check`` shows it: every field the value rules produced, personal ones masked."""

from __future__ import annotations

from typing import Any

import msgspec

from connectors.model import Certificate
from gateway.certificates.store import display_number
from gateway.privacy import mask_id_number, mask_name, mask_text


def masked_sample(certificate: Certificate) -> dict[str, Any]:
    """The unified fields (dates ISO 8601), with the holder's name and code and any ID number inside the
    certificate number masked; attribute values pass through `mask_text`; the signature only by its key id."""
    view: dict[str, Any] = msgspec.to_builtins(certificate)
    view["holder_name"] = mask_name(certificate.holder_name)
    view["holder_code"] = mask_id_number(certificate.holder_code)
    view["number"] = display_number(certificate)
    view["attributes"] = {k: mask_text(v) for k, v in certificate.attributes.items()}
    view["signature"] = None if certificate.signature is None else certificate.signature.key_id
    return view


__all__ = ["masked_sample"]
