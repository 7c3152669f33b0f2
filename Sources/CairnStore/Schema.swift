// The registry's tables, one migration text per database and version (the same versions in both).
// SQLite's go through GRDB's migrator (`grdb_migrations`), PostgreSQL's through
// `RegistryDatabase.migratePostgres` (`cairn_migrations`).

/// The SQLite schema.
enum Schema {
    /// Every migration, oldest first: its name and its text for each database.
    static let migrations: [(identifier: String, sqlite: String, postgres: String)] = [
        ("v1", v1, PostgresSchema.v1), ("v2", v2, PostgresSchema.v2), ("v3", v3, PostgresSchema.v3),
        ("v4", v4, PostgresSchema.v4), ("v5", v5, PostgresSchema.v5), ("v6", v6, PostgresSchema.v6),
    ]

    /// Registry operations: the traits discovery measured on a draft, the tuning run a version
    /// came from, and the `export` token scope (downloading artifact bundles).
    static let v6 = """
    ALTER TABLE models ADD COLUMN discovered TEXT;
    ALTER TABLE versions ADD COLUMN tuning TEXT;

    CREATE TABLE api_tokens_v6 (
        name TEXT PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'feedback', 'export', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
    );
    INSERT INTO api_tokens_v6 SELECT name, scope, hash, created_at, created_by, revoked_at FROM api_tokens;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v6 RENAME TO api_tokens;
    """

    /// The learning loop: decision traces of served requests (with their shadows' answers),
    /// outcome feedback, what each version learned from, and the `feedback` token scope.
    static let v5 = """
    CREATE TABLE decision_traces (
        request_id TEXT PRIMARY KEY,
        at INTEGER NOT NULL,
        target TEXT NOT NULL,
        user_id TEXT,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        k INTEGER NOT NULL,
        items TEXT NOT NULL,
        latency_us INTEGER NOT NULL,
        shadows TEXT NOT NULL,
        shed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX decision_traces_target ON decision_traces(target, at);
    CREATE INDEX decision_traces_at ON decision_traces(at);
    -- Each shadow's answer to a traced request, by version: the evidence approvals and promotions may require.
    CREATE TABLE shadow_answers (
        request_id TEXT NOT NULL,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        at INTEGER NOT NULL,
        overlap REAL NOT NULL,
        rank_correlation REAL,
        latency_us INTEGER NOT NULL,
        PRIMARY KEY (request_id, model, version)
    );
    CREATE INDEX shadow_answers_version ON shadow_answers(model, version, at);
    CREATE INDEX shadow_answers_at ON shadow_answers(at);

    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        at INTEGER NOT NULL,
        request_id TEXT,
        target TEXT NOT NULL,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        template TEXT NOT NULL,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        weight REAL
    );
    CREATE INDEX feedback_template ON feedback(template, id);
    CREATE INDEX feedback_route ON feedback(target, model, version);

    ALTER TABLE versions ADD COLUMN samples INTEGER;
    ALTER TABLE versions ADD COLUMN feedback_samples INTEGER;
    ALTER TABLE versions ADD COLUMN feedback_through INTEGER;
    -- Who signed the revision a row's change came from (`--verify-signatures`).
    ALTER TABLE audit_log ADD COLUMN signer TEXT;

    -- The notifications outbox: an event per promotion, approval, rejection, rollback, drift,
    -- stall and training failure, written in the transaction of what it reports; and each
    -- receiver's deliveries of them.
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        version INTEGER,
        revision TEXT,
        audit_id INTEGER,
        payload TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        event_id INTEGER NOT NULL REFERENCES events(id),
        receiver TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        last_error TEXT,
        delivered_at INTEGER,
        PRIMARY KEY (event_id, receiver)
    );
    CREATE INDEX deliveries_pending ON deliveries(receiver, state, event_id);

    CREATE TABLE api_tokens_v5 (
        name TEXT PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'feedback', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
    );
    INSERT INTO api_tokens_v5 SELECT name, scope, hash, created_at, created_by, revoked_at FROM api_tokens;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v5 RENAME TO api_tokens;
    """

    /// The scheduler job a run was handed to (a Slurm trainer): what the trainer needs to
    /// re-attach to it, and whether it may still be running (`job_open`) so that a job whose
    /// run ended without its worker is cancelled.
    static let v4 = """
    ALTER TABLE training_runs ADD COLUMN job TEXT;
    ALTER TABLE training_runs ADD COLUMN job_open INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX training_runs_open_jobs ON training_runs(job_open) WHERE job_open = 1;
    """

    /// Results of runs trained by workers without the signing key, until the control plane
    /// verifies their artifacts, signs and records them.
    static let v3 = """
    CREATE TABLE run_results (
        run_id INTEGER PRIMARY KEY REFERENCES training_runs(id),
        holder TEXT NOT NULL,
        result TEXT NOT NULL,
        submitted_at INTEGER NOT NULL
    );
    """

    /// API tokens for the HTTP API (only their SHA-256 is kept).
    static let v2 = """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
    );
    """

    static let v1 = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE outcome_weights (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        archived INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision TEXT NOT NULL
    );

    CREATE TABLE templates (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        archived INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision TEXT NOT NULL
    );

    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        family TEXT,
        stage TEXT NOT NULL DEFAULT 'none',
        lifecycle TEXT NOT NULL,
        first_ready_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision TEXT NOT NULL
    );
    CREATE INDEX models_family ON models(family, stage);

    -- Immutable identity; only label, description and the decision change.
    CREATE TABLE versions (
        model TEXT NOT NULL REFERENCES models(name),
        number INTEGER NOT NULL,
        system_name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        status_reason TEXT,
        metrics TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        fingerprint_inputs TEXT NOT NULL,
        dataset_hash TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        trainer_version TEXT NOT NULL,
        run_id INTEGER NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        decided_at INTEGER,
        label TEXT,
        description TEXT,
        artifact_hash TEXT,
        artifact_signature TEXT,
        PRIMARY KEY (model, number)
    );
    CREATE INDEX versions_fingerprint ON versions(model, fingerprint);

    CREATE TABLE training_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        model TEXT NOT NULL REFERENCES models(name),
        fingerprint TEXT NOT NULL,
        request TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        reason TEXT,
        commit_sha TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        next_attempt_at INTEGER,
        lease_holder TEXT,
        lease_expires_at INTEGER,
        version INTEGER,
        metrics TEXT,
        log TEXT
    );
    CREATE INDEX training_runs_state ON training_runs(state, next_attempt_at);
    CREATE INDEX training_runs_model ON training_runs(model, id);

    CREATE TABLE serving_targets (
        name TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        surface TEXT NOT NULL,
        routes TEXT NOT NULL,
        shadow TEXT NOT NULL,
        assigned INTEGER NOT NULL DEFAULT 1,
        drift TEXT,
        promoted_at INTEGER NOT NULL,
        revision TEXT
    );

    -- Append-only; each row's hash chains to the previous row's.
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        address TEXT NOT NULL,
        version INTEGER,
        before TEXT,
        after TEXT,
        reason TEXT NOT NULL,
        revision TEXT,
        author TEXT,
        file TEXT,
        actor TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_address ON audit_log(address, id);
    -- Which models a row concerns (a promotion concerns every model it routes), for history filters.
    CREATE TABLE audit_models (audit_id INTEGER NOT NULL REFERENCES audit_log(id), model TEXT NOT NULL);
    CREATE INDEX audit_models_model ON audit_models(model, audit_id);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

    CREATE TABLE reconcile_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        revision TEXT,
        revision_name TEXT,
        result TEXT NOT NULL,
        changes INTEGER NOT NULL DEFAULT 0,
        blocked INTEGER NOT NULL DEFAULT 0,
        message TEXT
    );

    CREATE TABLE applier_lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """
}

/// The PostgreSQL schema: the SQLite schema's tables and columns, with 64-bit integers, text
/// compared byte by byte (`COLLATE "C"`, so every ORDER BY matches SQLite's), identity columns
/// for the run and pass ids, and the audit history's append-only triggers.
enum PostgresSchema {
    static let v6 = """
    ALTER TABLE models ADD COLUMN discovered TEXT;
    ALTER TABLE versions ADD COLUMN tuning TEXT;
    ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
    ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'feedback', 'export', 'admin'));
    """

    static let v5 = """
    CREATE TABLE decision_traces (
        request_id TEXT COLLATE "C" PRIMARY KEY,
        at BIGINT NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C",
        model TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        k BIGINT NOT NULL,
        items TEXT NOT NULL,
        latency_us BIGINT NOT NULL,
        shadows TEXT NOT NULL,
        shed BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX decision_traces_target ON decision_traces(target, at);
    CREATE INDEX decision_traces_at ON decision_traces(at);
    CREATE TABLE shadow_answers (
        request_id TEXT COLLATE "C" NOT NULL,
        model TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        at BIGINT NOT NULL,
        overlap DOUBLE PRECISION NOT NULL,
        rank_correlation DOUBLE PRECISION,
        latency_us BIGINT NOT NULL,
        PRIMARY KEY (request_id, model, version)
    );
    CREATE INDEX shadow_answers_version ON shadow_answers(model, version, at);
    CREATE INDEX shadow_answers_at ON shadow_answers(at);
    CREATE TABLE feedback (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        received_at BIGINT NOT NULL,
        at BIGINT NOT NULL,
        request_id TEXT COLLATE "C",
        target TEXT COLLATE "C" NOT NULL,
        model TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        template TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        item_id TEXT COLLATE "C" NOT NULL,
        outcome TEXT COLLATE "C" NOT NULL,
        weight DOUBLE PRECISION
    );
    CREATE INDEX feedback_template ON feedback(template, id);
    CREATE INDEX feedback_route ON feedback(target, model, version);
    ALTER TABLE versions ADD COLUMN samples BIGINT;
    ALTER TABLE versions ADD COLUMN feedback_samples BIGINT;
    ALTER TABLE versions ADD COLUMN feedback_through BIGINT;
    ALTER TABLE audit_log ADD COLUMN signer TEXT;
    CREATE TABLE events (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        kind TEXT COLLATE "C" NOT NULL,
        address TEXT COLLATE "C" NOT NULL,
        version BIGINT,
        revision TEXT,
        audit_id BIGINT,
        payload TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        event_id BIGINT NOT NULL REFERENCES events(id),
        receiver TEXT COLLATE "C" NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts BIGINT NOT NULL DEFAULT 0,
        next_attempt_at BIGINT,
        last_error TEXT,
        delivered_at BIGINT,
        PRIMARY KEY (event_id, receiver)
    );
    CREATE INDEX deliveries_pending ON deliveries(receiver, state, event_id);
    ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_scope_check;
    ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'feedback', 'admin'));
    """

    static let v4 = """
    ALTER TABLE training_runs ADD COLUMN job TEXT;
    ALTER TABLE training_runs ADD COLUMN job_open BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX training_runs_open_jobs ON training_runs(job_open) WHERE job_open = 1;
    """

    static let v3 = """
    CREATE TABLE run_results (
        run_id BIGINT PRIMARY KEY REFERENCES training_runs(id),
        holder TEXT NOT NULL,
        result TEXT NOT NULL,
        submitted_at BIGINT NOT NULL
    );
    """

    static let v2 = """
    CREATE TABLE api_tokens (
        name TEXT COLLATE "C" PRIMARY KEY,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
        hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at BIGINT
    );
    """

    static let v1 = """
    CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE outcome_weights (
        name TEXT COLLATE "C" PRIMARY KEY,
        spec TEXT NOT NULL,
        archived BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revision TEXT NOT NULL
    );

    CREATE TABLE templates (
        name TEXT COLLATE "C" PRIMARY KEY,
        spec TEXT NOT NULL,
        archived BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revision TEXT NOT NULL
    );

    CREATE TABLE models (
        name TEXT COLLATE "C" PRIMARY KEY,
        spec TEXT NOT NULL,
        family TEXT COLLATE "C",
        stage TEXT NOT NULL DEFAULT 'none',
        lifecycle TEXT NOT NULL,
        first_ready_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revision TEXT NOT NULL
    );
    CREATE INDEX models_family ON models(family, stage);

    CREATE TABLE versions (
        model TEXT COLLATE "C" NOT NULL REFERENCES models(name),
        number BIGINT NOT NULL,
        system_name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        status_reason TEXT,
        metrics TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        fingerprint_inputs TEXT NOT NULL,
        dataset_hash TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        trainer_version TEXT NOT NULL,
        run_id BIGINT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        decided_at BIGINT,
        label TEXT,
        description TEXT,
        artifact_hash TEXT,
        artifact_signature TEXT,
        PRIMARY KEY (model, number)
    );
    CREATE INDEX versions_fingerprint ON versions(model, fingerprint);

    CREATE TABLE training_runs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        model TEXT COLLATE "C" NOT NULL REFERENCES models(name),
        fingerprint TEXT COLLATE "C" NOT NULL,
        request TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        reason TEXT,
        commit_sha TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        max_attempts BIGINT NOT NULL DEFAULT 3,
        next_attempt_at BIGINT,
        lease_holder TEXT,
        lease_expires_at BIGINT,
        version BIGINT,
        metrics TEXT,
        log TEXT
    );
    CREATE INDEX training_runs_state ON training_runs(state, next_attempt_at);
    CREATE INDEX training_runs_model ON training_runs(model, id);

    CREATE TABLE serving_targets (
        name TEXT COLLATE "C" PRIMARY KEY,
        tenant TEXT NOT NULL,
        surface TEXT NOT NULL,
        routes TEXT NOT NULL,
        shadow TEXT NOT NULL,
        assigned BIGINT NOT NULL DEFAULT 1,
        drift TEXT,
        promoted_at BIGINT NOT NULL,
        revision TEXT
    );

    CREATE TABLE audit_log (
        id BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        action TEXT NOT NULL,
        address TEXT COLLATE "C" NOT NULL,
        version BIGINT,
        before TEXT,
        after TEXT,
        reason TEXT NOT NULL,
        revision TEXT,
        author TEXT,
        file TEXT,
        actor TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_address ON audit_log(address, id);
    CREATE TABLE audit_models (audit_id BIGINT NOT NULL REFERENCES audit_log(id), model TEXT COLLATE "C" NOT NULL);
    CREATE INDEX audit_models_model ON audit_models(model, audit_id);
    CREATE FUNCTION cairn_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION cairn_audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION cairn_audit_log_append_only();

    CREATE TABLE reconcile_runs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        revision TEXT,
        revision_name TEXT,
        result TEXT NOT NULL,
        changes BIGINT NOT NULL DEFAULT 0,
        blocked BIGINT NOT NULL DEFAULT 0,
        message TEXT
    );

    CREATE TABLE applier_lease (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        pid BIGINT NOT NULL,
        host TEXT NOT NULL,
        acquired_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    """
}
