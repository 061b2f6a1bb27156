-- Embedded demo CRM (customers, orders, items, deliveries, returns, bank accounts) with Korean demo data.
-- Used when dialog.crm.kind is "embedded"; a real deployment points dialog.crm at its REST CRM instead.
-- Dates are relative to the migration time so the demo data always looks recent.

CREATE TABLE crm_customers (
    customer_id  text PRIMARY KEY,
    name         text NOT NULL,
    phone        text NOT NULL,                 -- digits only, 010XXXXXXXX
    email        text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',
    birth_date   date,
    grade        text NOT NULL DEFAULT '일반',    -- membership grade
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crm_customers_phone ON crm_customers (phone);
CREATE INDEX crm_customers_name ON crm_customers (name);

CREATE TABLE crm_orders (
    order_id     text PRIMARY KEY,
    customer_id  text NOT NULL REFERENCES crm_customers (customer_id),
    status       text NOT NULL CHECK (status IN ('paid', 'preparing', 'shipped', 'delivered', 'cancelled')),
    ordered_at   timestamptz NOT NULL,
    total_won    integer NOT NULL,
    payment      text NOT NULL DEFAULT '신용카드'
);
CREATE INDEX crm_orders_customer ON crm_orders (customer_id, ordered_at DESC);

CREATE TABLE crm_order_items (
    order_id     text NOT NULL REFERENCES crm_orders (order_id) ON DELETE CASCADE,
    line         integer NOT NULL,
    product      text NOT NULL,
    option       text NOT NULL DEFAULT '',
    qty          integer NOT NULL DEFAULT 1,
    price_won    integer NOT NULL,
    returnable   boolean NOT NULL DEFAULT true,  -- false for made-to-order goods (plan §5.2)
    PRIMARY KEY (order_id, line)
);

CREATE TABLE crm_deliveries (
    tracking_number  text PRIMARY KEY,
    order_id         text NOT NULL REFERENCES crm_orders (order_id) ON DELETE CASCADE,
    carrier          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('ready', 'in_transit', 'out_for_delivery', 'delivered')),
    last_location    text NOT NULL DEFAULT '',
    eta              date,
    delivered_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crm_deliveries_order ON crm_deliveries (order_id);

-- A return/exchange *request*. Refunds are never made here: a human agent decides them.
CREATE TABLE crm_returns (
    return_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id     text NOT NULL REFERENCES crm_orders (order_id),
    customer_id  text NOT NULL REFERENCES crm_customers (customer_id),
    return_type  text NOT NULL CHECK (return_type IN ('반품', '교환')),
    reason       text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'approved', 'rejected')),
    call_id      text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crm_returns_order ON crm_returns (order_id);

CREATE TABLE crm_accounts (
    account_number  text PRIMARY KEY,           -- digits only
    customer_id     text NOT NULL REFERENCES crm_customers (customer_id),
    product         text NOT NULL,
    balance_won     bigint NOT NULL DEFAULT 0,
    opened_at       date NOT NULL
);
CREATE INDEX crm_accounts_customer ON crm_accounts (customer_id);

INSERT INTO crm_customers (customer_id, name, phone, email, address, birth_date, grade) VALUES
 ('C1001', '김민지', '01012345678', 'minji.kim@example.com', '서울특별시 강남구 테헤란로 123, 101동 1001호', '1985-03-12', '골드'),
 ('C1002', '이서준', '01023456789', 'seojun.lee@example.com', '부산광역시 해운대구 센텀중앙로 45, 302호', '1990-07-25', '실버'),
 ('C1003', '박지훈', '01034567890', 'jihoon.park@example.com', '대전광역시 유성구 대학로 99', '1978-11-02', '일반'),
 ('C1004', '최수아', '01045678901', 'sua.choi@example.com', '경기도 성남시 분당구 판교역로 166', '1995-01-30', 'VIP'),
 ('C1005', '정하늘', '01056789012', 'haneul.jung@example.com', '인천광역시 연수구 송도과학로 32', '1988-09-09', '일반'),
 ('C1006', '강도윤', '01067890123', 'doyun.kang@example.com', '광주광역시 서구 상무중앙로 7', '2000-05-17', '실버');

INSERT INTO crm_orders (order_id, customer_id, status, ordered_at, total_won, payment) VALUES
 ('123456', 'C1001', 'shipped',   now() - interval '2 days',  129000, '신용카드'),
 ('234567', 'C1001', 'delivered', now() - interval '6 days',   59000, '카카오페이'),
 ('345678', 'C1002', 'preparing', now() - interval '1 day',   189000, '네이버페이'),
 ('456789', 'C1003', 'delivered', now() - interval '14 days',  89000, '신용카드'),
 ('567890', 'C1004', 'shipped',   now() - interval '1 day',    42000, '무통장입금'),
 ('678901', 'C1005', 'paid',      now() - interval '3 hours',  75000, '신용카드'),
 ('789012', 'C1006', 'cancelled', now() - interval '5 days',   39000, '카카오페이'),
 ('890123', 'C1002', 'shipped',   now() - interval '3 days',   54000, '신용카드');

INSERT INTO crm_order_items (order_id, line, product, option, qty, price_won, returnable) VALUES
 ('123456', 1, '무선 블루투스 이어폰', '화이트', 1, 129000, true),
 ('234567', 1, '린넨 여름 원피스', '네이비 M', 1, 59000, true),
 ('345678', 1, '10인용 전기압력밥솥', '', 1, 189000, true),
 ('456789', 1, '쿠션 러닝화', '270mm', 1, 89000, true),
 ('567890', 1, '유기농 쌀', '10kg', 1, 42000, true),
 ('678901', 1, '맞춤 제작 원목 액자', 'A3 각인', 1, 75000, false),
 ('789012', 1, '휴대용 블루투스 스피커', '블랙', 1, 39000, true),
 ('890123', 1, '소설책 세트', '3권', 1, 54000, true);

INSERT INTO crm_deliveries (tracking_number, order_id, carrier, status, last_location, eta, delivered_at) VALUES
 ('600012345678', '123456', 'CJ대한통운', 'in_transit', '대전 허브 터미널', (now() + interval '1 day')::date, NULL),
 ('412345678901', '234567', '한진택배', 'delivered', '서울 강남 대리점', (now() - interval '4 days')::date,
  now() - interval '4 days'),
 ('233344556677', '456789', '롯데택배', 'delivered', '대전 유성 대리점', (now() - interval '12 days')::date,
  now() - interval '12 days'),
 ('254400112233', '567890', '롯데택배', 'out_for_delivery', '성남 분당 대리점', now()::date, NULL),
 ('6091234567890', '890123', '우체국택배', 'in_transit', '부산 우편집중국', (now() + interval '2 days')::date, NULL);

INSERT INTO crm_accounts (account_number, customer_id, product, balance_won, opened_at) VALUES
 ('110123456789', 'C1001', '하늘 자유입출금 통장', 1532000, '2015-04-01'),
 ('110987650021', 'C1001', '하늘 정기적금', 6000000, '2023-01-15'),
 ('352098765432', 'C1003', '하늘 자유입출금 통장', 284500, '2010-09-20'),
 ('110555501234', 'C1004', '하늘 청년도약 적금', 3200000, '2024-02-01');
