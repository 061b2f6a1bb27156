"""The embedded demo CRM in PostgreSQL (tables from sql/002_demo_crm.sql), shaped as plain dicts so that the
dialog tools see the same data from it as from a REST CRM.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agent.store.db import Database

ORDER_FIELDS = ("order_id", "customer_id", "status", "ordered_at", "total_won", "payment")
UPDATABLE_FIELDS = {"address": "address", "email": "email", "phone": "phone"}


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _clean(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: _iso(v) for k, v in row.items()}


class EmbeddedCrm:
    """CrmAdapter over the demo tables; every method opens a short connection (callers run in threads)."""

    name = "embedded"

    def __init__(self, db: Database):
        self.db = db

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            order = conn.execute(
                "SELECT o.order_id, o.customer_id, o.status, o.ordered_at, o.total_won, o.payment,"
                " c.name AS customer_name, c.phone AS customer_phone"
                " FROM crm_orders o JOIN crm_customers c USING (customer_id) WHERE o.order_id = %s",
                (order_id,),
            ).fetchone()
            if order is None:
                return None
            items = conn.execute(
                "SELECT product, option, qty, price_won, returnable FROM crm_order_items"
                " WHERE order_id = %s ORDER BY line",
                (order_id,),
            ).fetchall()
            delivery = conn.execute(
                "SELECT tracking_number, carrier, status, last_location, eta, delivered_at"
                " FROM crm_deliveries WHERE order_id = %s ORDER BY updated_at DESC LIMIT 1",
                (order_id,),
            ).fetchone()
        out = _clean(order) or {}
        out["items"] = [_clean(i) for i in items]
        out["delivery"] = _clean(delivery)
        return out

    def recent_orders(self, customer_id: str, limit: int = 3) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT o.order_id, o.status, o.ordered_at, o.total_won,"
                " (SELECT product FROM crm_order_items i WHERE i.order_id = o.order_id ORDER BY line LIMIT 1)"
                " AS product FROM crm_orders o WHERE o.customer_id = %s ORDER BY o.ordered_at DESC LIMIT %s",
                (customer_id, limit),
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]

    def get_delivery(self, tracking_number: str | None = None,
                     order_id: str | None = None) -> dict[str, Any] | None:
        if not tracking_number and not order_id:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT d.tracking_number, d.order_id, d.carrier, d.status, d.last_location, d.eta,"
                " d.delivered_at, o.customer_id FROM crm_deliveries d JOIN crm_orders o USING (order_id)"
                " WHERE (%(t)s::text IS NOT NULL AND d.tracking_number = %(t)s)"
                " OR (%(o)s::text IS NOT NULL AND d.order_id = %(o)s)"
                " ORDER BY d.updated_at DESC LIMIT 1",
                {"t": tracking_number, "o": order_id},
            ).fetchone()
        return _clean(row)

    def find_customers(self, phone: str | None = None, name: str | None = None,
                       phone_last4: str | None = None) -> list[dict[str, Any]]:
        if not (phone or name or phone_last4):
            return []
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT customer_id, name, phone FROM crm_customers"
                " WHERE (%(p)s::text IS NULL OR phone = %(p)s)"
                " AND (%(n)s::text IS NULL OR name = %(n)s)"
                " AND (%(l)s::text IS NULL OR right(phone, 4) = %(l)s)"
                " ORDER BY customer_id LIMIT 5",
                {"p": phone, "n": name, "l": phone_last4},
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]

    def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT customer_id, name, phone, email, address, grade FROM crm_customers"
                " WHERE customer_id = %s",
                (customer_id,),
            ).fetchone()
        return _clean(row)

    def create_return(self, order_id: str, customer_id: str, return_type: str, reason: str,
                      call_id: str | None = None) -> dict[str, Any]:
        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO crm_returns (order_id, customer_id, return_type, reason, call_id)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING return_id, order_id, return_type, status, created_at",
                (order_id, customer_id, return_type, reason, call_id),
            ).fetchone()
        return _clean(row) or {}

    def returns_for_order(self, order_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT return_id, return_type, reason, status, created_at FROM crm_returns"
                " WHERE order_id = %s ORDER BY return_id",
                (order_id,),
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]

    def update_customer(self, customer_id: str, field: str, value: str) -> dict[str, Any]:
        column = UPDATABLE_FIELDS.get(field)
        if column is None:
            raise ValueError(f"field {field!r} cannot be changed")
        with self.db.connection() as conn:
            # The column name comes from the fixed map above, never from the caller.
            row = conn.execute(
                f"UPDATE crm_customers SET {column} = %s, updated_at = now() WHERE customer_id = %s"
                " RETURNING customer_id",
                (value, customer_id),
            ).fetchone()
        if row is None:
            raise LookupError("no such customer")
        return {"customer_id": customer_id, "field": field, "updated": True}

    def verify_bank_customer(self, birth: date, account_last4: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT DISTINCT c.customer_id, c.name FROM crm_customers c JOIN crm_accounts a USING (customer_id)"
                " WHERE c.birth_date = %s AND right(a.account_number, 4) = %s",
                (birth, account_last4),
            ).fetchall()
        # Two customers sharing both values cannot be told apart: not verified.
        return _clean(row[0]) if len(row) == 1 else None

    def accounts(self, customer_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT right(account_number, 4) AS last4, product, balance_won FROM crm_accounts"
                " WHERE customer_id = %s ORDER BY opened_at",
                (customer_id,),
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]
