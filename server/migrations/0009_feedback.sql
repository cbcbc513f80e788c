-- Feedback on answers: thumbs, ratings, corrections and preference pairs, each tied to the thread checkpoint the
-- rated answer came from. `prompt` and `context` are copies of what the answer was based on (the last human
-- message, the answer's text, tool results, other state), taken from the checkpoint when the feedback is written,
-- so an export reads the same whatever happens to the thread later. `actor` is the rater's key name. A client may
-- send an `idempotency_key`: a retry with it finds the row already written instead of writing a second one.
-- Deleting a thread deletes its feedback (it holds the conversation's text).

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM feedback) THEN
        RAISE EXCEPTION 'table feedback has rows written before migration 0009 (no release wrote any); move them '
                        'to another table and start again';
    END IF;
END $$;

ALTER TABLE feedback DROP CONSTRAINT IF EXISTS feedback_rating_check;
ALTER TABLE feedback ALTER COLUMN run_id TYPE uuid USING run_id::uuid;
ALTER TABLE feedback
    ADD COLUMN IF NOT EXISTS kind             text NOT NULL,
    ADD COLUMN IF NOT EXISTS checkpoint_id    text NOT NULL,
    ADD COLUMN IF NOT EXISTS message_id       text,
    ADD COLUMN IF NOT EXISTS thumbs           smallint,
    ADD COLUMN IF NOT EXISTS correction       text,
    ADD COLUMN IF NOT EXISTS prompt           jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN IF NOT EXISTS context          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN IF NOT EXISTS idempotency_key  text;

ALTER TABLE feedback
    ADD CONSTRAINT feedback_thread_fk FOREIGN KEY (thread_id) REFERENCES threads ON DELETE CASCADE,
    ADD CONSTRAINT feedback_kind_check CHECK (kind IN ('thumbs', 'rating', 'correction', 'preference')),
    ADD CONSTRAINT feedback_thumbs_check CHECK (thumbs IN (-1, 1)),
    ADD CONSTRAINT feedback_rating_check CHECK (rating BETWEEN 1 AND 5),
    ADD CONSTRAINT feedback_fields_of_kind_check CHECK (
        (kind = 'thumbs' AND thumbs IS NOT NULL AND num_nonnulls(rating, correction, chosen, rejected) = 0)
        OR (kind = 'rating' AND rating IS NOT NULL AND num_nonnulls(thumbs, correction, chosen, rejected) = 0)
        OR (kind = 'correction' AND correction IS NOT NULL AND num_nonnulls(thumbs, rating, chosen, rejected) = 0)
        OR (kind = 'preference' AND chosen IS NOT NULL AND rejected IS NOT NULL
            AND num_nonnulls(thumbs, rating, correction) = 0)
    ),
    ADD CONSTRAINT feedback_checkpoint_id_check
        CHECK (checkpoint_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    ADD CONSTRAINT feedback_text_length_check CHECK (
        char_length(comment) <= 4000 AND char_length(correction) <= 4000 AND char_length(chosen) <= 20000
        AND char_length(rejected) <= 20000 AND char_length(message_id) <= 200
        AND char_length(idempotency_key) <= 128 AND char_length(actor) <= 200
    );

CREATE UNIQUE INDEX IF NOT EXISTS feedback_idempotency_key_idx ON feedback (idempotency_key);
CREATE INDEX IF NOT EXISTS feedback_thread_idx ON feedback (thread_id);
CREATE INDEX IF NOT EXISTS feedback_created_idx ON feedback (created_at);
CREATE INDEX IF NOT EXISTS feedback_kind_idx ON feedback (kind, feedback_id);
