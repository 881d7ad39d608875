"""What a read did: events read and kept, events skipped by reason, hits dropped.

Nothing is skipped silently: every reader returns a :class:`ReadSummary`, whose ``str`` is a
short report for logs and command-line tools.

Examples
--------
>>> s = ReadSummary()
>>> s.add_skip("empty", "a.root", 3)
>>> s.events_read, s.events_kept = 10, 9
>>> s.skipped["empty"], s.n_skipped
(1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SKIP_REASONS", "STATUS_CODES", "ReadSummary"]

SKIP_REASONS: dict[str, str] = {
    "empty": "no hits",
    "nonfinite": "NaN or infinite value",
    "negative_energy": "negative hit energy",
    "too_many_hits": "more hits than max_hits",
}
"""Reasons an event can be skipped, with their description."""

STATUS_CODES: dict[str, int] = {
    "empty": 1,
    "nonfinite": 2,
    "negative_energy": 3,
    "too_many_hits": 4,
}
"""Status code of each skip reason (0 is a kept event), as written per entry by calo-predict."""

_MAX_EXAMPLES = 5


@dataclass
class ReadSummary:
    """Counts of a read.

    Attributes
    ----------
    files:
        Files read, in order.
    events_read:
        Entries looked at.
    events_kept:
        Events returned.
    skipped:
        Reason -> number of events skipped (keys from :data:`SKIP_REASONS`).
    examples:
        Reason -> up to five ``(file, entry)`` of skipped events, to find them again.
    hits_read, hits_kept:
        Hits in the events looked at, and in the events returned.
    events_truncated, hits_dropped:
        Events cut to ``max_hits`` and the hits that removed.
    hits_clipped:
        Negative energies set to zero (policy ``on_negative_energy="clip"``).
    formats:
        File -> how its events are stored, ``"TTree"`` or ``"RNTuple"``.

    Examples
    --------
    >>> s = ReadSummary(files=["a.root"], events_read=2, events_kept=2, hits_read=5, hits_kept=5,
    ...                 formats={"a.root": "RNTuple"})
    >>> print(s)  # doctest: +NORMALIZE_WHITESPACE
    read 2 events (5 hits) from 1 file (RNTuple): kept 2 events (5 hits), skipped 0
    """

    files: list[str] = field(default_factory=list)
    events_read: int = 0
    events_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    hits_read: int = 0
    hits_kept: int = 0
    events_truncated: int = 0
    hits_dropped: int = 0
    hits_clipped: int = 0
    formats: dict[str, str] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """Total number of events skipped."""
        return sum(self.skipped.values())

    def add_skip(self, reason: str, file: str, entry: int, count: int = 1) -> None:
        """Count ``count`` skipped events of ``reason``; remember ``(file, entry)``.

        Examples
        --------
        >>> s = ReadSummary()
        >>> s.add_skip("nonfinite", "a.root", 7)
        >>> s.examples
        {'nonfinite': [('a.root', 7)]}
        """
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES:
            ex.append((file, int(entry)))

    def merge(self, other: ReadSummary) -> ReadSummary:
        """Add the counts of ``other`` into this summary (in place) and return it.

        Examples
        --------
        >>> a = ReadSummary(files=["a.root"], events_read=3, events_kept=3)
        >>> b = ReadSummary(files=["b.root"], events_read=2, events_kept=1, skipped={"empty": 1})
        >>> a.merge(b).events_read, a.skipped, a.files
        (5, {'empty': 1}, ['a.root', 'b.root'])
        """
        self.files.extend(f for f in other.files if f not in self.files)
        self.events_read += other.events_read
        self.events_kept += other.events_kept
        for k, v in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v
        for k, v in other.examples.items():
            ex = self.examples.setdefault(k, [])
            ex.extend(v[: max(0, _MAX_EXAMPLES - len(ex))])
        self.hits_read += other.hits_read
        self.hits_kept += other.hits_kept
        self.events_truncated += other.events_truncated
        self.hits_dropped += other.hits_dropped
        self.hits_clipped += other.hits_clipped
        self.formats.update(other.formats)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON/YAML.

        Examples
        --------
        >>> ReadSummary(events_read=1).to_dict()["events_read"]
        1
        """
        return {
            "files": list(self.files),
            "events_read": self.events_read,
            "events_kept": self.events_kept,
            "skipped": dict(self.skipped),
            "examples": {k: [list(e) for e in v] for k, v in self.examples.items()},
            "hits_read": self.hits_read,
            "hits_kept": self.hits_kept,
            "events_truncated": self.events_truncated,
            "hits_dropped": self.hits_dropped,
            "hits_clipped": self.hits_clipped,
            "formats": dict(self.formats),
        }

    def _format_note(self) -> str:
        """`` (TTree)``, `` (RNTuple)`` or `` (2 TTree, 1 RNTuple)`` for the files read."""
        if not self.formats:
            return ""
        kinds = list(self.formats.values())
        if len(set(kinds)) == 1:
            return f" ({kinds[0]})"
        return " (" + ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds))) + ")"

    def __str__(self) -> str:
        nf = len(self.files)
        lines = [
            f"read {self.events_read} events ({self.hits_read} hits) from {nf} "
            f"file{'s' if nf != 1 else ''}{self._format_note()}: kept {self.events_kept} events "
            f"({self.hits_kept} hits), skipped {self.n_skipped}"
        ]
        for reason, n in sorted(self.skipped.items()):
            desc = SKIP_REASONS.get(reason, reason)
            ex = ", ".join(f"{f} entry {e}" for f, e in self.examples.get(reason, []))
            lines.append(f"  skipped {n} ({desc}), e.g. {ex}")
        if self.events_truncated:
            lines.append(
                f"  truncated {self.events_truncated} events to max_hits, "
                f"dropping {self.hits_dropped} hits"
            )
        if self.hits_clipped:
            lines.append(f"  clipped {self.hits_clipped} negative hit energies to 0")
        return "\n".join(lines)
