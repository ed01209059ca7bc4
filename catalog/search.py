"""Find items the way a window clerk types: a Chinese fragment (``低保``, ``生活保障``), full pinyin
(``zuidishenghuobaozhang``) or pinyin initials (``zdshbz``), case-insensitive, spaces ignored.

The index is built once (at catalog load). For characters with several readings the phrase-aware reading
pypinyin picks is indexed, plus the per-character most common reading when it differs, so both the right
and the "naive" spelling find the item.

Ranking, best first: exact match (name, keyword, code, full pinyin or initials) → prefix → substring of the
name or a keyword → substring of the pinyin; ties go to the match nearer the start, then the shorter name,
then catalog order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from catalog.models import Item

_EXACT, _PREFIX, _TEXT_SUBSTRING, _PINYIN_SUBSTRING, _ALL_TERMS = range(5)
#: Everything that is not a letter, digit or CJK ideograph is ignored on both sides.
_NOISE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")
_LATIN = re.compile(r"^[0-9a-z]+$")


def normalise(text: str) -> str:
    """Lower-case, full-width letters and digits folded, punctuation and spaces dropped."""
    folded = "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)
    return _NOISE.sub("", folded.lower())


def _pinyin(text: str) -> list[str]:
    # pypinyin takes ~0.3 s to import (its phrase tables): paid when the first index is built, not by every
    # module that imports the catalog's types.
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.NORMAL)


@lru_cache(maxsize=8192)
def _character_reading(ch: str) -> tuple[str, ...]:
    return tuple(_pinyin(ch))


def _syllables(text: str, *, per_character: bool) -> list[str]:
    if per_character:
        out: list[str] = []
        for ch in text:
            out.extend(_character_reading(ch))
    else:
        out = _pinyin(text)
    return [s for s in (normalise(x) for x in out) if s]


def pinyin_forms(text: str) -> tuple[set[str], set[str]]:
    """(full pinyin strings, initials strings) for ``text``; several when readings differ."""
    fulls: set[str] = set()
    initials: set[str] = set()
    for per_character in (False, True):
        syl = _syllables(text, per_character=per_character)
        fulls.add("".join(syl))
        # A non-Chinese run (``80``) stays whole in the initials: 80周岁 → 80zs.
        initials.add("".join(s if s.isdigit() else s[0] for s in syl))
    return fulls, initials


class _Entry:
    __slots__ = ("initials", "item", "name_len", "order", "pinyins", "texts")

    def __init__(self, item: Item, order: int) -> None:
        self.item = item
        self.order = order
        self.name_len = len(item.name)
        words = [item.name, *item.keywords]
        self.texts = tuple(dict.fromkeys(w for w in (normalise(x) for x in words) if w))
        fulls: set[str] = set()
        initials: set[str] = set()
        for w in words:
            f, i = pinyin_forms(w)
            fulls |= f
            initials |= i
        self.pinyins = tuple(sorted(fulls))
        self.initials = tuple(sorted(initials))


def _match(needle: str, haystacks: Iterable[str], substring_tier: int) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for h in haystacks:
        if h == needle:
            return (_EXACT, 0)
        if h.startswith(needle):
            cand = (_PREFIX, 0)
        else:
            pos = h.find(needle)
            if pos < 0:
                continue
            cand = (substring_tier, pos)
        if best is None or cand < best:
            best = cand
    return best


class SearchIndex:
    """Pinyin and text index over a fixed sequence of items."""

    def __init__(self, items: Sequence[Item]) -> None:
        self._items = tuple(items)
        self._entries = tuple(_Entry(item, n) for n, item in enumerate(items))

    def _rank(self, entry: _Entry, q: str, code_q: str) -> tuple[int, int] | None:
        if entry.item.code.upper() == code_q:
            return (_EXACT, 0)
        best = _match(q, entry.texts, _TEXT_SUBSTRING)
        if _LATIN.match(q):
            for forms in (entry.pinyins, entry.initials):
                m = _match(q, forms, _PINYIN_SUBSTRING)
                if m is not None and (best is None or m < best):
                    best = m
        return best

    def search(self, query: str, *, limit: int | None = None) -> list[Item]:
        """Matching items, best first. An empty query matches every item, in catalog order."""
        q = normalise(query)
        if not q:
            return list(self._items[:limit] if limit is not None else self._items)
        code_q = query.strip().upper()
        terms = [t for t in (normalise(x) for x in query.split()) if t]
        scored: list[tuple[int, int, int, int, Item]] = []
        for e in self._entries:
            rank = self._rank(e, q, code_q)
            if rank is None and len(terms) > 1 and all(self._rank(e, t, t.upper()) is not None for t in terms):
                rank = (_ALL_TERMS, 0)  # "最低 保障": every word matches somewhere
            if rank is not None:
                scored.append((rank[0], rank[1], e.name_len, e.order, e.item))
        scored.sort(key=lambda s: s[:4])
        found = [s[4] for s in scored]
        return found[:limit] if limit is not None else found
