-- Post-call analytics and cost, one row per finished call (docs/analytics.md defines every column).
-- Written by agent.analytics.store after the call's end is stored, and by `callagent analyze` (backfill).

CREATE TABLE call_analytics (
    call_id                text PRIMARY KEY REFERENCES calls (call_id) ON DELETE CASCADE,
    version                integer NOT NULL,           -- definition version; older rows are recomputed
    analyzed_at            timestamptz NOT NULL DEFAULT now(),
    started_at             timestamptz NOT NULL,       -- copy of calls.started_at: daily figures need no join
    duration_s             real NOT NULL,
    caller_speech_s        real NOT NULL,
    agent_speech_s         real NOT NULL,
    caller_share           real,                       -- caller / (caller + agent) speech seconds
    gaps_ms                real[] NOT NULL DEFAULT '{}',  -- caller speech end -> agent audio, per reply
    gap_p50_ms             real,
    gap_max_ms             real,
    gaps_over_limit        integer NOT NULL DEFAULT 0,
    sentiment              jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{seq, score}] per caller turn
    sentiment_avg          real,
    sentiment_end          real,
    sentiment_trend        text NOT NULL DEFAULT 'none',
    intents                text[] NOT NULL DEFAULT '{}',
    tools                  text[] NOT NULL DEFAULT '{}',
    tool_failures          integer NOT NULL DEFAULT 0,
    resolution             text NOT NULL,              -- resolved | transferred | abandoned | callback | failed
    resolution_reason      text NOT NULL DEFAULT '',
    compliance             jsonb NOT NULL DEFAULT '{}'::jsonb,  -- check -> true | false | null (unknown)
    compliance_ok          boolean NOT NULL,
    barge_ins              integer NOT NULL DEFAULT 0,
    replies                integer NOT NULL DEFAULT 0,
    quality_score          real NOT NULL,
    quality_parts          jsonb NOT NULL DEFAULT '{}'::jsonb,
    llm_prompt_tokens      integer NOT NULL DEFAULT 0,
    llm_completion_tokens  integer NOT NULL DEFAULT 0,
    asr_engine             text NOT NULL DEFAULT '',
    asr_seconds            real NOT NULL DEFAULT 0,
    tts_engine             text NOT NULL DEFAULT '',
    tts_seconds            real NOT NULL DEFAULT 0,
    gpu_seconds            real NOT NULL DEFAULT 0,
    cost_krw               real NOT NULL DEFAULT 0,
    cost                   jsonb NOT NULL DEFAULT '{}'::jsonb  -- the parts of cost_krw
);
CREATE INDEX call_analytics_started_at ON call_analytics (started_at DESC);
-- Live calls (no end yet) without scanning every finished call.
CREATE INDEX calls_open ON calls (started_at DESC) WHERE ended_at IS NULL;
-- Finished calls the backfill has not analysed yet are found through this.
CREATE INDEX calls_ended_at ON calls (ended_at DESC) WHERE ended_at IS NOT NULL;
