"""The embedded demo CRM in PostgreSQL (tables from sql/002_demo_crm.sql), shaped as plain dicts so that the
dialog tools see the same data from it as from a REST CRM.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agent.store.db import Database

ORDER_FIELDS = ("order_id", "customer_id", "status", "ordered_at", "total_won", "payment")
UPDATABLE_FIELDS = {"address": "address", "email": "email", "phone": "phone"}

# `# pragma: no mutate` on the SQL text lines: PostgreSQL keywords and unquoted names are case-blind, so a
# mutant that only changes their letter case is equivalent; the SQL text is checked by the rows tests read back.


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
                "SELECT o.order_id, o.customer_id, o.status, o.ordered_at,"  # pragma: no mutate
                " o.total_won, o.payment,"  # pragma: no mutate
                " c.name AS customer_name, c.phone AS customer_phone"  # pragma: no mutate
                " FROM crm_orders o JOIN crm_customers c USING (customer_id)"  # pragma: no mutate
                " WHERE o.order_id = %s",  # pragma: no mutate
                (order_id,),
            ).fetchone()
            if order is None:
                return None
            items = conn.execute(
                "SELECT product, option, qty, price_won, returnable FROM crm_order_items"  # pragma: no mutate
                " WHERE order_id = %s ORDER BY line",  # pragma: no mutate
                (order_id,),
            ).fetchall()
            delivery = conn.execute(
                "SELECT tracking_number, carrier, status, last_location, eta, delivered_at"  # pragma: no mutate
                " FROM crm_deliveries WHERE order_id = %s"  # pragma: no mutate
                " ORDER BY updated_at DESC LIMIT 1",  # pragma: no mutate
                (order_id,),
            ).fetchone()
        out = _clean(order) or {}
        out["items"] = [_clean(i) for i in items]
        out["delivery"] = _clean(delivery)
        return out

    def recent_orders(self, customer_id: str, limit: int = 3) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT o.order_id, o.status, o.ordered_at, o.total_won,"  # pragma: no mutate
                " (SELECT product FROM crm_order_items i"  # pragma: no mutate
                " WHERE i.order_id = o.order_id ORDER BY line LIMIT 1)"  # pragma: no mutate
                " AS product FROM crm_orders o WHERE o.customer_id = %s"  # pragma: no mutate
                " ORDER BY o.ordered_at DESC LIMIT %s",  # pragma: no mutate
                (customer_id, limit),
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]

    def get_delivery(self, tracking_number: str | None = None,
                     order_id: str | None = None) -> dict[str, Any] | None:
        if not tracking_number and not order_id:
            return None
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT d.tracking_number, d.order_id, d.carrier, d.status,"  # pragma: no mutate
                " d.last_location, d.eta, d.delivered_at, o.customer_id"  # pragma: no mutate
                " FROM crm_deliveries d JOIN crm_orders o USING (order_id)"  # pragma: no mutate
                " WHERE (%(t)s::text IS NOT NULL AND d.tracking_number = %(t)s)"  # pragma: no mutate
                " OR (%(o)s::text IS NOT NULL AND d.order_id = %(o)s)"  # pragma: no mutate
                " ORDER BY d.updated_at DESC LIMIT 1",  # pragma: no mutate
                {"t": tracking_number, "o": order_id},
            ).fetchone()
        return _clean(row)

    def find_customers(self, phone: str | None = None, name: str | None = None,
                       phone_last4: str | None = None) -> list[dict[str, Any]]:
        if not (phone or name or phone_last4):
            return []
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT customer_id, name, phone FROM crm_customers"  # pragma: no mutate
                " WHERE (%(p)s::text IS NULL OR phone = %(p)s)"  # pragma: no mutate
                " AND (%(n)s::text IS NULL OR name = %(n)s)"  # pragma: no mutate
                " AND (%(l)s::text IS NULL OR right(phone, 4) = %(l)s)"  # pragma: no mutate
                " ORDER BY customer_id LIMIT 5",  # pragma: no mutate
                {"p": phone, "n": name, "l": phone_last4},
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]

    def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT customer_id, name, phone, email, address, grade FROM crm_customers"  # pragma: no mutate
                " WHERE customer_id = %s",  # pragma: no mutate
                (customer_id,),
            ).fetchone()
        return _clean(row)

    def create_return(self, order_id: str, customer_id: str, return_type: str, reason: str,
                      call_id: str | None = None) -> dict[str, Any]:
        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO crm_returns (order_id, customer_id, return_type, reason, call_id)"  # pragma: no mutate
                " VALUES (%s, %s, %s, %s, %s)"  # pragma: no mutate
                " RETURNING return_id, order_id, return_type, status, created_at",  # pragma: no mutate
                (order_id, customer_id, return_type, reason, call_id),
            ).fetchone()
        return _clean(row) or {}

    def returns_for_order(self, order_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT return_id, return_type, reason, status, created_at FROM crm_returns"  # pragma: no mutate
                " WHERE order_id = %s ORDER BY return_id",  # pragma: no mutate
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
                f"UPDATE crm_customers SET {column} = %s, updated_at = now()"  # pragma: no mutate
                " WHERE customer_id = %s RETURNING customer_id",  # pragma: no mutate
                (value, customer_id),
            ).fetchone()
        if row is None:
            raise LookupError("no such customer")
        return {"customer_id": customer_id, "field": field, "updated": True}

    def verify_bank_customer(self, birth: date, account_last4: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT DISTINCT c.customer_id, c.name"  # pragma: no mutate
                " FROM crm_customers c JOIN crm_accounts a USING (customer_id)"  # pragma: no mutate
                " WHERE c.birth_date = %s AND right(a.account_number, 4) = %s",  # pragma: no mutate
                (birth, account_last4),
            ).fetchall()
        # Two customers sharing both values cannot be told apart: not verified.
        return _clean(row[0]) if len(row) == 1 else None

    def accounts(self, customer_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT right(account_number, 4) AS last4, product, balance_won"  # pragma: no mutate
                " FROM crm_accounts WHERE customer_id = %s ORDER BY opened_at",  # pragma: no mutate
                (customer_id,),
            ).fetchall()
        return [_clean(r) for r in rows]  # type: ignore[misc]
