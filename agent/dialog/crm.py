"""The CRM the tools talk to: one interface (`CrmAdapter`), an HTTP REST adapter, and the embedded demo
CRM in PostgreSQL (agent.store.crm.EmbeddedCrm). Values are plain JSON-able dicts.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from typing import Any, Protocol

log = logging.getLogger(__name__)


class CrmError(RuntimeError):
    """The CRM could not answer (down, timeout, bad reply). Tools turn it into a polite apology."""


class CrmAdapter(Protocol):
    name: str

    def get_order(self, order_id: str) -> dict[str, Any] | None: ...

    def recent_orders(self, customer_id: str, limit: int = 3) -> list[dict[str, Any]]: ...

    def get_delivery(self, tracking_number: str | None = None,
                     order_id: str | None = None) -> dict[str, Any] | None: ...

    def find_customers(self, phone: str | None = None, name: str | None = None,
                       phone_last4: str | None = None) -> list[dict[str, Any]]: ...

    def get_customer(self, customer_id: str) -> dict[str, Any] | None: ...

    def create_return(self, order_id: str, customer_id: str, return_type: str, reason: str,
                      call_id: str | None = None) -> dict[str, Any]: ...

    def returns_for_order(self, order_id: str) -> list[dict[str, Any]]: ...

    def update_customer(self, customer_id: str, field: str, value: str) -> dict[str, Any]: ...

    def verify_bank_customer(self, birth: date, account_last4: str) -> dict[str, Any] | None: ...

    def accounts(self, customer_id: str) -> list[dict[str, Any]]: ...


class RestCrm:
    """CrmAdapter over a REST API (JSON). Endpoints, relative to `base_url`:

    GET  /orders/{id}                      → order with items and delivery, 404 if unknown
    GET  /customers/{id}/orders?limit=N    → [order summary]
    GET  /deliveries/{tracking} | /orders/{id}/delivery
    GET  /customers?phone=&name=&phone_last4=  → [customer]
    GET  /customers/{id}                   PATCH /customers/{id} {"field": …, "value": …}
    POST /returns {order_id, customer_id, return_type, reason, call_id}
    POST /identity/bank {birth_date, account_last4} → customer, 404 if no match
    GET  /customers/{id}/accounts          → [{last4, product, balance_won}]
    """

    name = "rest"

    def __init__(self, base_url: str, *, auth_header: str = "Authorization", auth_value: str | None = None,
                 timeout_s: float = 3.0):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if auth_value:
            self.headers[auth_header] = auth_value
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            # The status only: the URL can carry a customer's phone number.
            raise CrmError(f"CRM answered HTTP {exc.code} to {method}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise CrmError(f"CRM unreachable ({type(exc).__name__})") from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError as exc:
            raise CrmError("CRM sent a reply that is not JSON") from exc

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        return self._call("GET", f"/orders/{self._q(order_id)}")

    def recent_orders(self, customer_id: str, limit: int = 3) -> list[dict[str, Any]]:
        return self._call("GET", f"/customers/{self._q(customer_id)}/orders", query={"limit": limit}) or []

    def get_delivery(self, tracking_number: str | None = None,
                     order_id: str | None = None) -> dict[str, Any] | None:
        if tracking_number:
            return self._call("GET", f"/deliveries/{self._q(tracking_number)}")
        if order_id:
            return self._call("GET", f"/orders/{self._q(order_id)}/delivery")
        return None

    def find_customers(self, phone: str | None = None, name: str | None = None,
                       phone_last4: str | None = None) -> list[dict[str, Any]]:
        if not (phone or name or phone_last4):
            return []
        query = {"phone": phone, "name": name, "phone_last4": phone_last4}
        return self._call("GET", "/customers", query=query) or []

    def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        return self._call("GET", f"/customers/{self._q(customer_id)}")

    def create_return(self, order_id: str, customer_id: str, return_type: str, reason: str,
                      call_id: str | None = None) -> dict[str, Any]:
        body = {"order_id": order_id, "customer_id": customer_id, "return_type": return_type,
                "reason": reason, "call_id": call_id}
        result = self._call("POST", "/returns", body)
        if not isinstance(result, dict):
            raise CrmError("CRM did not confirm the return request")
        return result

    def returns_for_order(self, order_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/orders/{self._q(order_id)}/returns") or []

    def update_customer(self, customer_id: str, field: str, value: str) -> dict[str, Any]:
        result = self._call("PATCH", f"/customers/{self._q(customer_id)}", {"field": field, "value": value})
        if result is None:
            raise LookupError("no such customer")
        return result

    def verify_bank_customer(self, birth: date, account_last4: str) -> dict[str, Any] | None:
        return self._call("POST", "/identity/bank",
                          {"birth_date": birth.isoformat(), "account_last4": account_last4})

    def accounts(self, customer_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/customers/{self._q(customer_id)}/accounts") or []
