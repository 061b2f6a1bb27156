-- Call recordings sealed at rest (agent/privacy/recording.py). The audio file is AES-256-GCM encrypted; this row
-- says where it is, how long it is, which key sealed it (a key id derived from the key, never the key) and which
-- spans were masked (PCI pause while a card number or PIN was typed or said). No foreign key to calls: a
-- recording is sealed right after the call, possibly before the call's own row leaves the store's queue; purge
-- and forget delete both.

CREATE TABLE recordings (
    call_id       text PRIMARY KEY,                 -- FreeSWITCH channel Unique-ID, as calls.call_id
    path          text NOT NULL,                    -- the sealed file (<recording_dir>/<uuid>.wav.enc)
    duration_s    real NOT NULL,
    channels      smallint NOT NULL,                -- 2 with RECORD_STEREO: caller and agent apart
    sample_rate   integer NOT NULL,
    key_id        text NOT NULL,
    sha256        text NOT NULL,                    -- of the sealed file, to notice a swapped or damaged file
    masked_spans  jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [[start_s, end_s], …] from the recording's start
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_created_at ON recordings (created_at);
-- A deletion request finds a person's calls by caller ID.
CREATE INDEX calls_caller ON calls (caller);
