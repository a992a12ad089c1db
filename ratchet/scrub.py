"""Secrets never leave the process in a span, a log line or an artifact.

Two nets: the exact values Ratchet holds (API token, model keys, webhook secret, GitHub token),
and the shapes of well-known credentials, for keys Ratchet was never told about (a repository's
test printing one, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

REDACTED = "[REDACTED]"
_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-ant-[A-Za-z0-9_\-]{8,}"  # Anthropic
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|sntry[us]_[A-Za-z0-9_=+/\-]{16,}"  # Sentry
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r")|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{12,}"
)


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.values = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
        self._raw = [v.encode() for v in self.values]

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        return _SHAPES.sub(REDACTED, text)

    def data(self, data: bytes) -> bytes:
        """Exact values only: artifacts hold repository content, whose look-alike keys (test
        fixtures) are the repository's own and must round-trip."""
        for value in self._raw:
            if value in data:
                data = data.replace(value, REDACTED.encode())
        return data

    def chunks(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """`data` over a stream: each chunk scrubbed with the tail of the one before it held
        back (one byte less than the longest secret), so no secret hides across a boundary."""
        keep = max((len(v) for v in self._raw), default=1) - 1
        carry = b""
        for chunk in chunks:
            carry = self.data(carry + chunk)
            if len(carry) > keep:
                cut = len(carry) - keep
                yield carry[:cut]
                carry = carry[cut:]
        if carry:
            yield self.data(carry)
