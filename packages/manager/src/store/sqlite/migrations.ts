// The SQLite schema, as an ordered list of migrations. A migration is never edited once released:
// a change is a new entry with the next version (the rollout engine's deployments and targets
// come as migration 2). Times are integers, milliseconds since the epoch; JSON columns hold text.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'agents, enrollment tokens, commands, nonces, releases',
    sql: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE enrollment_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        seats INTEGER NOT NULL CHECK (seats > 0),
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= seats),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        created_by TEXT NOT NULL,
        note TEXT
      ) STRICT;

      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        machine_id TEXT NOT NULL UNIQUE,
        hostname TEXT NOT NULL,
        platform TEXT NOT NULL,
        arch TEXT NOT NULL,
        agent_version TEXT NOT NULL,
        daemon_version TEXT NOT NULL,
        credential_hash TEXT NOT NULL UNIQUE,
        service_token_enc TEXT NOT NULL,
        enrollment_token_id TEXT REFERENCES enrollment_tokens(id),
        enrolled_at INTEGER NOT NULL,
        credential_issued_at INTEGER NOT NULL,
        last_checkin_at INTEGER,
        health_json TEXT,
        update_json TEXT,
        inventory_json TEXT NOT NULL DEFAULT '{}'
      ) STRICT;

      CREATE TABLE commands (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        deployment_id TEXT,
        nonce_id TEXT,
        body_json TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        delivered_count INTEGER NOT NULL DEFAULT 0,
        last_delivered_at INTEGER,
        acked_at INTEGER,
        outcome TEXT,
        outcome_detail_json TEXT,
        outcome_at INTEGER
      ) STRICT;
      -- The check-in's lookup: this agent's unacked commands, oldest first.
      CREATE INDEX commands_unacked ON commands (agent_id, seq) WHERE acked_at IS NULL;
      CREATE INDEX commands_by_agent ON commands (agent_id, seq);
      CREATE INDEX commands_by_deployment ON commands (deployment_id) WHERE deployment_id IS NOT NULL;

      CREATE TABLE nonces (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        machine_id TEXT NOT NULL,
        command_id TEXT NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
        deployment_id TEXT NOT NULL,
        artifact TEXT NOT NULL,
        from_version TEXT NOT NULL,
        to_version TEXT NOT NULL,
        rollback INTEGER NOT NULL CHECK (rollback IN (0, 1)),
        token TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        consumed_at INTEGER,
        consumed_outcome TEXT,
        reported_version TEXT
      ) STRICT;
      CREATE INDEX nonces_by_command ON nonces (command_id);

      CREATE TABLE releases (
        artifact TEXT NOT NULL,
        version TEXT NOT NULL,
        version_key TEXT NOT NULL,
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        file_name TEXT NOT NULL,
        file_size INTEGER NOT NULL CHECK (file_size >= 0),
        file_sha256 TEXT NOT NULL,
        envelope_json TEXT NOT NULL,
        manifest_json TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'published')),
        registered_at INTEGER NOT NULL,
        published_at INTEGER,
        published_by TEXT NOT NULL,
        PRIMARY KEY (artifact, version_key, platform)
      ) STRICT;
      CREATE INDEX releases_catalog ON releases (artifact, platform, channel, state);
    `,
  },
  {
    version: 2,
    name: 'rollouts: agent rollout settings, deployments, targets, events',
    sql: `
      -- The operator's rollout settings of an agent: its canary group, and the URL of its agent for
      -- push mode (no daemon: the manager calls the agent's shutdown endpoint itself).
      ALTER TABLE agents ADD COLUMN rollout_group TEXT CHECK (rollout_group IN ('explorer', 'early_adopter', 'general'));
      ALTER TABLE agents ADD COLUMN push_url TEXT;

      CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        artifact TEXT NOT NULL,
        version TEXT NOT NULL,
        commit_sha TEXT,
        changelog TEXT,
        strategy TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        -- The rollout's options (maxInFlight, gates, soak, windows, ...), fixed at creation.
        options_json TEXT NOT NULL,
        -- [{name, label}] in order; every target names its phase by index.
        phases_json TEXT NOT NULL,
        notification_json TEXT,
        phase_index INTEGER NOT NULL DEFAULT 0,
        -- rolling | soaking | awaiting_promote | done
        phase_state TEXT NOT NULL,
        phase_started_at INTEGER,
        soak_until INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        completed_at INTEGER,
        updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX deployments_active ON deployments (artifact, status);
      CREATE INDEX deployments_by_created ON deployments (created_at);

      CREATE TABLE deployment_targets (
        deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        phase INTEGER NOT NULL,
        state TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('daemon', 'push')),
        from_version TEXT,
        to_version TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        command_id TEXT,
        rollback_command_id TEXT,
        rollback_state TEXT,
        notified_at INTEGER,
        deadline_at INTEGER,
        deferred_count INTEGER NOT NULL DEFAULT 0,
        first_deferred_at INTEGER,
        deferred_until INTEGER,
        healthy_since INTEGER,
        last_probe_at INTEGER,
        error_code TEXT,
        message TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (deployment_id, agent_id)
      ) STRICT;

      CREATE TABLE deployment_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        message TEXT NOT NULL,
        details_json TEXT
      ) STRICT;
      CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, seq);
    `,
  },
  {
    version: 3,
    name: 'audit outbox: audit records committed with their change, then moved into the log',
    sql: `
      CREATE TABLE audit_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 4,
    name: 'agents: revoked_at, when an operator removed the host (drover agents remove)',
    sql: `
      ALTER TABLE agents ADD COLUMN revoked_at INTEGER;
    `,
  },
  {
    version: 5,
    name: 'agents: pending_credential_hash, a rotated credential not yet used (decision 0032)',
    sql: `
      ALTER TABLE agents ADD COLUMN pending_credential_hash TEXT;
      CREATE UNIQUE INDEX agents_by_pending_credential ON agents (pending_credential_hash) WHERE pending_credential_hash IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: 'leases and the audit chain: work one replica does at a time, and one hash chain for all replicas (decision 0038)',
    sql: `
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        token INTEGER NOT NULL,
        holder TEXT NOT NULL,
        acquired_at INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE audit_chain (
        seq INTEGER PRIMARY KEY,
        line TEXT NOT NULL
      ) STRICT;
    `,
  },
];
