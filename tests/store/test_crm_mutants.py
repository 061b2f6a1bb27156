"""The embedded demo CRM as the tools see it: which rows each query returns, in which order, with dates as
ISO text; returns and changes as rows in PostgreSQL; a bank customer proven only by an unambiguous pair."""

from __future__ import annotations

from datetime import date

import pytest

from agent.store.crm import EmbeddedCrm
from agent.store.db import Database

SETUP = """
INSERT INTO crm_customers (customer_id, name, phone, email, address, birth_date, grade) VALUES
 ('C9001', '한가람', '01090001111', 'garam@example.com', '서울', '1970-01-01', '일반'),
 ('C9002', '한가람', '01090002222', '', '', '1970-01-01', '일반');
INSERT INTO crm_orders (order_id, customer_id, status, ordered_at, total_won, payment) VALUES
 ('900001', 'C9001', 'shipped', '2026-11-01 10:00+09', 30000, '신용카드'),
 ('900002', 'C9001', 'paid', '2026-11-03 10:00+09', 10000, '카카오페이'),
 ('900003', 'C9001', 'delivered', '2026-11-02 10:00+09', 20000, '신용카드');
INSERT INTO crm_order_items (order_id, line, product, option, qty, price_won, returnable) VALUES
 ('900001', 2, '둘째 상품', '', 1, 10000, false), ('900001', 1, '첫째 상품', '빨강', 2, 10000, true),
 ('900003', 1, '셋째 상품', '', 1, 20000, true);
INSERT INTO crm_deliveries (tracking_number, order_id, carrier, status, last_location, eta, delivered_at, updated_at)
 VALUES ('900000000001', '900001', '옛 택배', 'ready', '', '2026-11-04', NULL, '2026-11-01 12:00+00'),
        ('900000000002', '900001', '새 택배', 'in_transit', '대전', '2026-11-05', NULL, '2026-11-02 12:00+00');
INSERT INTO crm_accounts (account_number, customer_id, product, balance_won, opened_at) VALUES
 ('555500004444', 'C9001', '나중 통장', 2, '2020-01-01'), ('555500003333', 'C9001', '먼저 통장', 1, '2010-01-01'),
 ('666600004444', 'C9002', '같은 끝자리', 3, '2015-01-01');
"""


@pytest.fixture
def crm(db: Database) -> EmbeddedCrm:
    with db.connection() as conn:
        conn.execute(SETUP)
    return EmbeddedCrm(db)


def test_an_order_with_its_items_in_line_order_and_its_newest_delivery(crm: EmbeddedCrm) -> None:
    order = crm.get_order("900001")
    assert order == {
        "order_id": "900001", "customer_id": "C9001", "status": "shipped", "ordered_at": "2026-11-01T01:00:00+00:00",
        "total_won": 30000, "payment": "신용카드", "customer_name": "한가람", "customer_phone": "01090001111",
        "items": [{"product": "첫째 상품", "option": "빨강", "qty": 2, "price_won": 10000, "returnable": True},
                  {"product": "둘째 상품", "option": "", "qty": 1, "price_won": 10000, "returnable": False}],
        "delivery": {"tracking_number": "900000000002", "carrier": "새 택배", "status": "in_transit",
                     "last_location": "대전", "eta": "2026-11-05", "delivered_at": None}}
    assert crm.get_order("900002")["delivery"] is None and crm.get_order("900002")["items"] == []
    assert crm.get_order("nope") is None


def test_recent_orders_newest_first_with_their_first_product(crm: EmbeddedCrm) -> None:
    assert crm.recent_orders("C9001", 2) == [
        {"order_id": "900002", "status": "paid", "ordered_at": "2026-11-03T01:00:00+00:00", "total_won": 10000,
         "product": None},
        {"order_id": "900003", "status": "delivered", "ordered_at": "2026-11-02T01:00:00+00:00", "total_won": 20000,
         "product": "셋째 상품"}]
    assert [o["order_id"] for o in crm.recent_orders("C9001")] == ["900002", "900003", "900001"]
    assert crm.recent_orders("C9001")[2]["product"] == "첫째 상품"


def test_recent_orders_are_three_unless_asked(db: Database, crm: EmbeddedCrm) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO crm_orders (order_id, customer_id, status, ordered_at, total_won)"
                     " VALUES ('900004', 'C9001', 'paid', '2026-10-01', 1)")
    assert [o["order_id"] for o in crm.recent_orders("C9001")] == ["900002", "900003", "900001"]
    assert len(crm.recent_orders("C9001", 5)) == 4


def test_a_delivery_by_tracking_number_or_by_order(crm: EmbeddedCrm) -> None:
    old = crm.get_delivery(tracking_number="900000000001")
    assert old == {"tracking_number": "900000000001", "order_id": "900001", "carrier": "옛 택배", "status": "ready",
                   "last_location": "", "eta": "2026-11-04", "delivered_at": None, "customer_id": "C9001"}
    assert crm.get_delivery(order_id="900001")["tracking_number"] == "900000000002"  # the newest
    assert crm.get_delivery(tracking_number="000", order_id="900001")["tracking_number"] == "900000000002"
    assert crm.get_delivery(tracking_number="000") is None
    assert crm.get_delivery() is None and crm.get_delivery("", "") is None


def test_find_customers_by_every_given_value(crm: EmbeddedCrm) -> None:
    assert crm.find_customers() == []
    assert crm.find_customers(phone="01090002222") == [{"customer_id": "C9002", "name": "한가람",
                                                        "phone": "01090002222"}]
    assert [c["customer_id"] for c in crm.find_customers(name="한가람")] == ["C9001", "C9002"]
    assert [c["customer_id"] for c in crm.find_customers(name="한가람", phone_last4="1111")] == ["C9001"]
    assert [c["customer_id"] for c in crm.find_customers(phone_last4="2222")] == ["C9002"]
    assert crm.find_customers(name="한가람", phone="01090002222", phone_last4="1111") == []


def test_at_most_five_customers_are_found(db: Database, crm: EmbeddedCrm) -> None:
    with db.connection() as conn:
        for i in range(7):
            conn.execute("INSERT INTO crm_customers (customer_id, name, phone) VALUES (%s, '동명', %s)",
                         (f"D{i}", f"0109999000{i}"))
    assert [c["customer_id"] for c in crm.find_customers(name="동명")] == ["D0", "D1", "D2", "D3", "D4"]


def test_a_customer_record(crm: EmbeddedCrm) -> None:
    assert crm.get_customer("C9001") == {"customer_id": "C9001", "name": "한가람", "phone": "01090001111",
                                         "email": "garam@example.com", "address": "서울", "grade": "일반"}
    assert crm.get_customer("C0000") is None


def test_returns_are_rows_listed_in_the_order_they_were_made(db: Database, crm: EmbeddedCrm) -> None:
    first = crm.create_return("900003", "C9001", "반품", "작아요", call_id="call-1")
    assert set(first) == {"return_id", "order_id", "return_type", "status", "created_at"}
    assert (first["order_id"], first["return_type"], first["status"]) == ("900003", "반품", "requested")
    assert isinstance(first["created_at"], str) and first["created_at"][:4] == str(date.today().year)
    second = crm.create_return("900003", "C9001", "교환", "색상")
    listed = crm.returns_for_order("900003")
    assert [(r["return_id"], r["return_type"], r["reason"], r["status"]) for r in listed] == [
        (first["return_id"], "반품", "작아요", "requested"), (second["return_id"], "교환", "색상", "requested")]
    assert crm.returns_for_order("900001") == []
    with db.connection() as conn:
        rows = conn.execute("SELECT customer_id, call_id FROM crm_returns ORDER BY return_id").fetchall()
    assert rows == [{"customer_id": "C9001", "call_id": "call-1"}, {"customer_id": "C9001", "call_id": None}]


def test_update_changes_one_column_of_one_customer(db: Database, crm: EmbeddedCrm) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE crm_customers SET updated_at = '2020-01-01'")
    assert crm.update_customer("C9001", "email", "new@example.com") == {"customer_id": "C9001", "field": "email",
                                                                        "updated": True}
    assert crm.update_customer("C9001", "phone", "01012121212")["updated"]
    assert crm.update_customer("C9001", "address", "부산")["updated"]
    with db.connection() as conn:
        rows = conn.execute("SELECT customer_id, email, phone, address, updated_at > '2021-01-01' AS touched"
                            " FROM crm_customers WHERE customer_id LIKE 'C900%' ORDER BY customer_id").fetchall()
    assert rows == [
        {"customer_id": "C9001", "email": "new@example.com", "phone": "01012121212", "address": "부산",
         "touched": True},
        {"customer_id": "C9002", "email": "", "phone": "01090002222", "address": "", "touched": False}]
    with pytest.raises(ValueError, match="'name' cannot be changed"):
        crm.update_customer("C9001", "name", "다른 이름")
    with pytest.raises(LookupError):
        crm.update_customer("C0000", "email", "x@example.com")


def test_a_bank_customer_only_when_one_customer_has_both_values(crm: EmbeddedCrm) -> None:
    assert crm.verify_bank_customer(date(1970, 1, 1), "3333") == {"customer_id": "C9001", "name": "한가람"}
    assert crm.verify_bank_customer(date(1970, 1, 1), "4444") is None  # C9001 and C9002 both: ambiguous
    assert crm.verify_bank_customer(date(1970, 1, 2), "3333") is None


def test_accounts_by_last_four_digits_oldest_first(crm: EmbeddedCrm) -> None:
    assert crm.accounts("C9001") == [{"last4": "3333", "product": "먼저 통장", "balance_won": 1},
                                     {"last4": "4444", "product": "나중 통장", "balance_won": 2}]
    assert crm.accounts("C0000") == []
