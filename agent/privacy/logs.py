"""Personal data out of log lines: a logging.Filter that masks a record's message (arguments included) and its
traceback text, and `install_log_filter()`, which the process start-up calls once."""

from __future__ import annotations

import logging

from agent.privacy.pii import mask_text


class PiiLogFilter(logging.Filter):
    """Masks the formatted message of every record it sees; the record keeps no arguments afterwards."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's problem, not a reason to leak
            message = str(record.msg)
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


_installed = PiiLogFilter()


def install_log_filter(logger: logging.Logger | None = None) -> PiiLogFilter:
    """Masks personal data in every line the handlers of `logger` (the root logger by default) write, and
    registers the masking with the shared formatter (agent.ops.logs) so handlers added later are covered.
    Call it after the handlers are configured; calling it again is harmless."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    try:
        from agent.ops import logs  # the shared log pipeline; absent in a bare library use
    except ImportError:
        return _installed
    logs.add_redactor(mask_text)
    return _installed
