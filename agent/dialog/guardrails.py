"""Guardrails in code, applied whatever the prompt says: secrets never enter the history or a reply,
money moves only through a human, and "ignore your instructions" disables every write for that turn.
"""

from __future__ import annotations

import re

from agent.privacy import pii

CARD_MASK = "[카드번호 ****"  # how a masked card number starts (agent.privacy.pii.Finding.masked)
_SECRET_WORDS = r"(?:비밀\s*번호|비번|패스워드|password|pin\s*번호|핀\s*번호|보안\s*카드\s*번호|cvc|cvv|otp\s*번호)"
_SECRET_MENTION = re.compile(_SECRET_WORDS, re.I)
# The agent must never ask for these; a reply that does is replaced (the LLM may be talked into it).
_SECRET_REQUEST = re.compile(
    rf"({_SECRET_WORDS}|카드\s*(?:번호\s*)?전체|카드\s*번호\s*(?:열여섯|16)\s*자리|전체\s*카드\s*번호|"
    r"full card number).{0,20}(?:말씀|알려|불러|입력|누르|주시|주세요|tell|give|say)|"
    r"\b(?:tell|give|say|provide|share|read)\b.{0,20}(?:password|pin\b|card number|cvv|cvc)",
    re.I,
)
_NEGATED = re.compile(r"\s*(?:하지|않|마시|마세요|마십|말아|드리지|해\s*주지)")
SAFE_SECRET_REPLY = "보안을 위해 비밀번호나 카드 전체 번호는 여쭤보지 않습니다."
# True because every turn is masked before it is stored, logged or sent to a model (agent/privacy/pii.py).
SECRET_WARNING = (
    "보안을 위해 비밀번호나 카드 번호 전체는 말씀하지 않으셔도 됩니다. 방금 말씀하신 번호는 상담 기록에서 가렸습니다."
)

_INJECTION = re.compile(
    r"(이전|앞의|앞에|위의|기존|모든)\s*(지시|명령|규칙|지침|프롬프트|설정).{0,6}(무시|잊어|따르지)|"
    r"(시스템|system)\s*(프롬프트|prompt|메시지)|개발자\s*모드|관리자\s*모드|탈옥|"
    r"ignore\s+(all\s+|the\s+|your\s+)?(previous|prior|above)\s+(instructions|rules|prompts?)|"
    r"you\s+are\s+now|jailbreak|developer\s+mode|act\s+as",
    re.I,
)
# Wanting money to move (refund, transfer, cancellation payout). Only a human may do any of these.
_MONEY_ACTION = re.compile(
    r"(환불|송금|이체|입금|돈|refund|wire|transfer\s+(the\s+)?money|payout|보상금)"
    r".{0,12}(처리|해\s*줘|해\s*주|해주|해\s*달|해달|받고\s*싶|원해|원합|요청|돌려|보내|진행|바로|당장|please|now)|"
    r"(돈|금액|결제\s*금액).{0,6}(돌려|보내|환급)|refund\s+me|give\s+me\s+(my\s+)?money",
    re.I,
)


def contains_card_number(text: str) -> bool:
    return any(f.kind == pii.CARD for f in pii.find_pii(text))


def contains_secret(text: str) -> bool:
    """The caller is giving a password/PIN or a full card or resident number."""
    return pii.contains_secret(text)


def redact(text: str) -> str:
    """Every piece of personal data masked (`[카드번호 ****3456]`, `[주민등록번호]`); safe to store and log."""
    return pii.mask_text(text)


def asks_for_secret(reply: str) -> bool:
    """The reply asks for a password or full card number ("…말씀하지 마세요" is a warning, not a request)."""
    return any(not _NEGATED.match(reply, m.end()) for m in _SECRET_REQUEST.finditer(reply))


def safe_reply(reply: str) -> str:
    """The agent's sentence, or a fixed safe one if it asks for a password or full card number."""
    if asks_for_secret(reply):
        return SAFE_SECRET_REPLY
    # Said aloud, so the speakable form ("전화번호 끝자리 5678"), not the bracketed one kept in records.
    return pii.replace_pii(reply, pii.Finding.spoken)


def is_injection(text: str) -> bool:
    return bool(_INJECTION.search(text))


def wants_money_moved(text: str) -> bool:
    """Refund / money transfer demanded (not merely asked about: "환불은 며칠 걸려요?" is a question)."""
    return bool(_MONEY_ACTION.search(text))


def mentions_secret(text: str) -> bool:
    return bool(_SECRET_MENTION.search(text))
