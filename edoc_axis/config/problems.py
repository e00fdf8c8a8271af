"""Configuration problems collected while loading, so that one ``ConfigError`` lists them all."""

from __future__ import annotations

from edoc_axis.errors import ConfigError, ErrorCode


class Problems:
    """What is wrong with one source of settings (a file, or the environment), in order.

    ``hint`` is said once for the whole list (e.g. how to name a config file), never per line.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[ErrorCode, str, str]] = []  # (code, dotted key, message)
        self.hint: str | None = None

    def add(self, code: ErrorCode, key: str, message: str) -> None:
        """Record one problem: its code, the dotted key it is about, and a sentence."""
        self.items.append((code, key, message))

    def has(self, code: str) -> bool:
        """Whether a problem with this code was recorded."""
        return any(item[0] == code for item in self.items)

    def raise_if_any(self) -> None:
        """Raise one ConfigError carrying the first problem's code; its element names the key
        when there is a single problem (each line of a list names its own)."""
        if not self.items:
            return
        code, key, _ = self.items[0]
        lines = [message for _, _, message in self.items]
        where = f"{self.source}; {self.hint}" if self.hint else self.source
        if len(lines) == 1:
            raise ConfigError(f"{lines[0]} ({where})", code=code, element=key)
        heading = f"{len(lines)} problems in {self.source}"
        if self.hint:
            heading += f" ({self.hint})"
        raise ConfigError(heading + ":\n" + "\n".join(f"  - {line}" for line in lines), code=code)
