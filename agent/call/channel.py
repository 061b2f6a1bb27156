"""What the outbound `connect` reply tells about the channel (freeswitch.md §1.3, §9)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

VAR_PREFIX = "variable_"


@dataclass(frozen=True)
class ChannelInfo:
    uuid: str
    caller: str = ""
    destination: str = ""
    read_rate: int = 8000
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def industry(self) -> str:
        return self.variables.get("callagent_industry", "")

    @property
    def tenant(self) -> str:
        return self.variables.get("callagent_tenant", "default")

    @classmethod
    def from_connect(cls, headers: Mapping[str, str]) -> ChannelInfo:
        uuid = headers.get("Unique-ID") or headers.get("Channel-Unique-ID") or headers.get("variable_uuid", "")
        if not uuid:
            raise ValueError("connect reply carries no Unique-ID")
        rate_text = headers.get("Channel-Read-Codec-Rate", "")
        # Before answer some channels report no codec yet; PSTN calls are 8 kHz.
        rate = int(rate_text) if rate_text.isdigit() and int(rate_text) in (8000, 16000) else 8000
        variables = {k[len(VAR_PREFIX):]: v for k, v in headers.items() if k.startswith(VAR_PREFIX)}
        return cls(
            uuid=uuid,
            caller=headers.get("Caller-Caller-ID-Number", ""),
            destination=headers.get("Caller-Destination-Number", ""),
            read_rate=rate,
            variables=variables,
        )
