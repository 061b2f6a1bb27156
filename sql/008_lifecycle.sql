-- Reviewed transcripts for the model lifecycle (agent/lifecycle): a reviewer's correction of one stored caller
-- turn. `callagent dataset export` takes this text instead of the recogniser's. It goes with the turn: purge and
-- forget delete turns, and the correction with them.

CREATE TABLE transcript_reviews (
    call_id      text NOT NULL,
    seq          integer NOT NULL,
    text         text NOT NULL,                     -- masked on write (agent.privacy.pii.mask_text)
    reviewer     text NOT NULL DEFAULT '',
    reviewed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, seq),
    FOREIGN KEY (call_id, seq) REFERENCES turns (call_id, seq) ON DELETE CASCADE
);
