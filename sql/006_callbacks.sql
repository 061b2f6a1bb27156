-- Callback requests: from the dialplan's `callagent::callback_request` event ('*' in the human queue) or from
-- the dialog. `callagent callbacks` places each one with `originate` over the inbound event socket when due.

CREATE TABLE callbacks (
    id               bigserial PRIMARY KEY,
    number           text NOT NULL,                 -- digits and a leading '+' only (it goes into a dial string)
    call_id          text NOT NULL DEFAULT '',      -- the AI call the request came from (ai_call_id)
    reason           text NOT NULL DEFAULT '',      -- escalation_reason of that call
    priority         integer NOT NULL DEFAULT 5,    -- 1 (urgent) … 9, as ai_priority
    context          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- channel variables handed to the agent on answer
    source           text NOT NULL DEFAULT 'dialplan',    -- dialplan | dialog | operator
    requested_at     timestamptz NOT NULL DEFAULT now(),
    due_at           timestamptz NOT NULL,          -- the agreed time (or requested_at + callbacks.delay_s)
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'dialing', 'placed', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    placed_uuid      text,                          -- the originated channel's uuid (+OK <uuid>)
    last_error       text
);
CREATE INDEX callbacks_due ON callbacks (priority, due_at) WHERE status = 'pending';
-- One open request per AI call: pressing '*' twice, or the dialplan and the dialog both asking, is one callback.
CREATE UNIQUE INDEX callbacks_one_open_per_call ON callbacks (call_id)
    WHERE call_id <> '' AND status IN ('pending', 'dialing');
