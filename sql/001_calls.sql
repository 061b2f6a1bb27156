-- Calls, turns and per-call events: everything an operator or analyst asks about a call.
-- Writes are idempotent (upserts keyed by call_id / (call_id, seq)) so the disk spool can replay them.

CREATE TABLE calls (
    call_id            text PRIMARY KEY,          -- FreeSWITCH channel Unique-ID
    caller             text NOT NULL DEFAULT '',
    destination        text NOT NULL DEFAULT '',
    industry           text NOT NULL DEFAULT '',
    started_at         timestamptz NOT NULL,
    answered_at        timestamptz,
    ended_at           timestamptz,
    end_reason         text,                      -- caller_hangup | transferred | agent_hangup | failed
    hangup_cause       text,
    transfer_target    text,
    escalation_reason  text,
    summary            text,
    variables          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX calls_started_at ON calls (started_at DESC);

CREATE TABLE turns (
    call_id         text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    speaker         text NOT NULL CHECK (speaker IN ('caller', 'agent')),
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    text            text NOT NULL,
    source          text NOT NULL DEFAULT '',     -- asr | text-injected | dtmf | greeting | policy | fallback
    engine          text,
    heard_text      text,                         -- agent turns: what the caller heard before a barge-in
    interrupted     boolean NOT NULL DEFAULT false,
    -- latency parts in milliseconds (agent turns carry the parts of the caller turn they answer)
    eos_wait_ms     real,                         -- caller's last speech frame -> end of speech decided
    asr_ms          real,
    dialog_ms       real,                         -- transcript in -> first speakable text
    tts_ms          real,                         -- first speakable text -> first audio chunk written
    first_audio_ms  real,                         -- transcript in -> PLAYBACK_START on the channel
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE call_events (
    call_id  text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    at       timestamptz NOT NULL,
    kind     text NOT NULL,                       -- barge_in | dtmf | fork_failed | escalation | error …
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (call_id, seq)
);
