"""Configuration problems collected while loading, so that one ``ConfigError`` lists them all."""

from __future__ import annotations

from edoc_axis.errors import ConfigError


class Problems:
    """What is wrong with one source of settings (a file, or the environment), in order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str, str]] = []  # (code, dotted key, message)

    def add(self, code: str, key: str, message: str) -> None:
        """Record one problem: its code, the dotted key it is about, and a sentence."""
        self.items.append((code, key, message))

    def raise_if_any(self) -> None:
        """Raise one ConfigError carrying the first problem's code and key."""
        if not self.items:
            return
        code, key, _ = self.items[0]
        lines = [message for _, _, message in self.items]
        if len(lines) == 1:
            message = f"{lines[0]} ({self.source})"
        else:
            message = f"{len(lines)} problems in {self.source}:\n" + "\n".join(
                f"  - {line}" for line in lines
            )
        raise ConfigError(message, code=code, element=key)
