"""`log` for scripts, and the capped capture of everything a script writes (print, log)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["Capture", "Log", "log"]


class Capture(io.TextIOBase):
    """The invocation's output: print() and log lines, cut at `cap` bytes with a marker."""

    def __init__(self, cap: int = 64 * 1024) -> None:
        self.cap = cap
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def reset(self, cap: int) -> None:
        self.cap = cap
        self._parts = []
        self._size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.truncated:
            return len(text)
        count = len(text)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate ('\udcff') cannot cross the channel as UTF-8 and used to kill
            # the worker: keep it visible, escaped.
            data = text.encode("utf-8", "backslashreplace")
            text = data.decode("utf-8")
        size = len(data)
        room = self.cap - self._size
        if size <= room:
            self._parts.append(text)
            self._size += size
        else:
            cut = data[:room].decode("utf-8", "ignore")
            self._parts.append(cut)
            self._parts.append(f"\n[log truncated at {self.cap} bytes]\n")
            self._size = self.cap
            self.truncated = True
        return count

    def getvalue(self) -> str:
        return "".join(self._parts)


capture = Capture()


class Log:
    """log.debug/info/warning/error(message, *args): one line each in the invocation's log."""

    def _emit(self, level: str, message: object, args: tuple[Any, ...]) -> None:
        text = str(message)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        capture.write(f"{level} {text}\n")

    def debug(self, message: object, *args: Any) -> None:
        self._emit("DEBUG", message, args)

    def info(self, message: object, *args: Any) -> None:
        self._emit("INFO", message, args)

    def warning(self, message: object, *args: Any) -> None:
        self._emit("WARNING", message, args)

    warn = warning

    def error(self, message: object, *args: Any) -> None:
        self._emit("ERROR", message, args)

    def exception(self, message: object, *args: Any) -> None:
        import traceback

        self._emit("ERROR", message, args)
        capture.write(traceback.format_exc())


log = Log()
