"""The typed reader every settings block is validated with, and the error that names the bad key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A setting is missing or wrong; `key` is the dotted path, `reason` says why."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"config key '{key}': {reason}")
        self.key = key
        self.reason = reason


_MISSING = object()


class Section:
    """Typed reader over one mapping of the YAML file; records which keys were read so typos are caught."""

    def __init__(self, data: Mapping[str, Any] | None, prefix: str):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(prefix, f"must be a mapping, got {type(data).__name__}")
        self.data = data
        self.prefix = prefix
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _get(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                raise ConfigError(self.key(name), "is required")
            return default
        return value

    def str(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is not default and not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, got {value!r}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, lo: int | None = None, hi: int | None = None) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, got {value!r}")
        self._check_range(name, value, lo, hi)
        return value

    def float(self, name: str, default: Any = _MISSING, *, lo: float | None = None,
              hi: float | None = None) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key(name), f"must be a number, got {value!r}")
        self._check_range(name, value, lo, hi)
        return float(value)

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is not default and not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.str(name, default)
        if value is not default and value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self._get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(self.key(name), "must be a mapping")
        return value

    def section(self, name: str) -> Section:
        return Section(self.mapping(name), self.key(name))

    def host_port(self, name: str, default: Any = _MISSING) -> Any:
        value = self.str(name, default)
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(self.key(name), f"must be host:port, got {value!r}")
        return host, int(port)

    def url(self, name: str, default: Any = _MISSING) -> Any:
        """An http(s):// URL without a trailing slash."""
        value = self.str(name, default)
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ConfigError(self.key(name), f"must be an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    def secret(self, name: str, default_env: str | None = None) -> str | None:
        """Reads `<name>_env` (the variable's name) and returns the variable's value, or None if unset."""
        env_name = self.str(f"{name}_env", default_env)
        return os.environ.get(env_name) if env_name else None

    def _check_range(self, name: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise ConfigError(self.key(name), f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise ConfigError(self.key(name), f"must be <= {hi}, got {value}")

    def done(self) -> None:
        """Rejects keys nobody read: a misspelt key must not be silently ignored."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")
