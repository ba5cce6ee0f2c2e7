import type { Migration } from '../sqlite/migrations.js';

// The PostgreSQL schema, as an ordered list of migrations with the same versions as the SQLite
// store's (sqlite/migrations.ts): one version number names the same tables in both. A migration is
// never edited once released: a change is a new entry with the next version.
//
// Types follow what the shared row mappers (sqlite/rows.ts, sqlite/rollout-rows.ts) expect: times
// are bigint milliseconds since the epoch (read back as numbers, store.ts), JSON is text (an
// envelope is kept byte for byte as published; jsonb would reorder its keys), a nonce's rollback is
// a boolean. Ids and keys that lists sort by are COLLATE "C", so they order byte-wise as in SQLite
// whatever the database's collation.

export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'agents, enrollment tokens, commands, nonces, releases',
    sql: `
      CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL
      );

      CREATE TABLE enrollment_tokens (
        id text COLLATE "C" PRIMARY KEY,
        token_hash text NOT NULL UNIQUE,
        seats integer NOT NULL CHECK (seats > 0),
        used integer NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= seats),
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        revoked_at bigint,
        created_by text NOT NULL,
        note text
      );

      CREATE TABLE agents (
        id text COLLATE "C" PRIMARY KEY,
        machine_id text NOT NULL UNIQUE,
        hostname text NOT NULL,
        platform text NOT NULL,
        arch text NOT NULL,
        agent_version text NOT NULL,
        daemon_version text NOT NULL,
        credential_hash text NOT NULL UNIQUE,
        service_token_enc text NOT NULL,
        enrollment_token_id text COLLATE "C" REFERENCES enrollment_tokens(id),
        enrolled_at bigint NOT NULL,
        credential_issued_at bigint NOT NULL,
        last_checkin_at bigint,
        health_json text,
        update_json text,
        inventory_json text NOT NULL DEFAULT '{}'
      );

      CREATE TABLE commands (
        seq bigserial PRIMARY KEY,
        id text COLLATE "C" NOT NULL UNIQUE,
        agent_id text COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        type text NOT NULL,
        deployment_id text COLLATE "C",
        nonce_id text,
        body_json text NOT NULL,
        created_at bigint NOT NULL,
        delivered_count integer NOT NULL DEFAULT 0,
        last_delivered_at bigint,
        acked_at bigint,
        outcome text,
        outcome_detail_json text,
        outcome_at bigint
      );
      -- The check-in's lookup: this agent's unacked commands, oldest first.
      CREATE INDEX commands_unacked ON commands (agent_id, seq) WHERE acked_at IS NULL;
      CREATE INDEX commands_by_agent ON commands (agent_id, seq);
      CREATE INDEX commands_by_deployment ON commands (deployment_id) WHERE deployment_id IS NOT NULL;

      CREATE TABLE nonces (
        id text PRIMARY KEY,
        agent_id text COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        machine_id text NOT NULL,
        command_id text COLLATE "C" NOT NULL REFERENCES commands(id) ON DELETE CASCADE,
        deployment_id text NOT NULL,
        artifact text NOT NULL,
        from_version text NOT NULL,
        to_version text NOT NULL,
        rollback boolean NOT NULL,
        token text NOT NULL,
        issued_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        consumed_at bigint,
        consumed_outcome text,
        reported_version text
      );
      CREATE INDEX nonces_by_command ON nonces (command_id);

      CREATE TABLE releases (
        artifact text NOT NULL,
        version text NOT NULL,
        version_key text COLLATE "C" NOT NULL,
        platform text NOT NULL,
        channel text NOT NULL,
        file_name text NOT NULL,
        file_size bigint NOT NULL CHECK (file_size >= 0),
        file_sha256 text NOT NULL,
        envelope_json text NOT NULL,
        manifest_json text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        state text NOT NULL CHECK (state IN ('pending', 'published')),
        registered_at bigint NOT NULL,
        published_at bigint,
        published_by text NOT NULL,
        PRIMARY KEY (artifact, version_key, platform)
      );
      CREATE INDEX releases_catalog ON releases (artifact, platform, channel, state);
    `,
  },
  {
    version: 2,
    name: 'rollouts: agent rollout settings, deployments, targets, events',
    sql: `
      -- The operator's rollout settings of an agent: its canary group, and the URL of its agent for
      -- push mode (no daemon: the manager calls the agent's shutdown endpoint itself).
      ALTER TABLE agents ADD COLUMN rollout_group text CHECK (rollout_group IN ('explorer', 'early_adopter', 'general'));
      ALTER TABLE agents ADD COLUMN push_url text;

      CREATE TABLE deployments (
        id text COLLATE "C" PRIMARY KEY,
        artifact text NOT NULL,
        version text NOT NULL,
        commit_sha text,
        changelog text,
        strategy text NOT NULL,
        status text NOT NULL,
        message text NOT NULL,
        -- The rollout's options (maxInFlight, gates, soak, windows, ...), fixed at creation.
        options_json text NOT NULL,
        -- [{name, label}] in order; every target names its phase by index.
        phases_json text NOT NULL,
        notification_json text,
        phase_index integer NOT NULL DEFAULT 0,
        -- rolling | soaking | awaiting_promote | done
        phase_state text NOT NULL,
        phase_started_at bigint,
        soak_until bigint,
        created_by text NOT NULL,
        created_at bigint NOT NULL,
        started_at bigint,
        completed_at bigint,
        updated_at bigint NOT NULL
      );
      CREATE INDEX deployments_active ON deployments (artifact, status);
      CREATE INDEX deployments_by_created ON deployments (created_at);

      CREATE TABLE deployment_targets (
        deployment_id text COLLATE "C" NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        agent_id text COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
        phase integer NOT NULL,
        state text NOT NULL,
        mode text NOT NULL CHECK (mode IN ('daemon', 'push')),
        from_version text,
        to_version text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        command_id text,
        rollback_command_id text,
        rollback_state text,
        notified_at bigint,
        deadline_at bigint,
        deferred_count integer NOT NULL DEFAULT 0,
        first_deferred_at bigint,
        deferred_until bigint,
        healthy_since bigint,
        last_probe_at bigint,
        error_code text,
        message text,
        updated_at bigint NOT NULL,
        PRIMARY KEY (deployment_id, agent_id)
      );

      CREATE TABLE deployment_events (
        seq bigserial PRIMARY KEY,
        deployment_id text COLLATE "C" NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        ts bigint NOT NULL,
        event_type text NOT NULL,
        message text NOT NULL,
        details_json text
      );
      CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, seq);
    `,
  },
  {
    version: 3,
    name: 'audit outbox: audit records committed with their change, then moved into the log',
    sql: `
      CREATE TABLE audit_outbox (
        id bigserial PRIMARY KEY,
        body text NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'agents: revoked_at, when an operator removed the host (drover agents remove)',
    sql: `
      ALTER TABLE agents ADD COLUMN revoked_at bigint;
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
        name text COLLATE "C" PRIMARY KEY,
        token bigint NOT NULL,
        holder text NOT NULL,
        acquired_at bigint NOT NULL
      );
      CREATE TABLE audit_chain (
        seq bigint PRIMARY KEY,
        line text NOT NULL
      );
    `,
  },
];
