using System.Data.Common;
using Npgsql;

namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>
/// The round log on PostgreSQL (Npgsql), shared by every coordinator instance of a deployment. Its schema also
/// holds what instances coordinate through: experiment leases, live instances and who is connected where.
/// Instances migrate the schema under an advisory lock, so several may start at once.
/// </summary>
public sealed class PostgresDatabase : SqlDatabase
{
    private const int SchemaVersion = 3;

    /// <summary>The advisory lock key under which an instance migrates the schema ("Ferr").</summary>
    private const long MigrationLock = 0x46657272;

    public PostgresDatabase(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrEmpty(builder.ApplicationName))
            builder.ApplicationName = "ferret-coordinator";
        Description = $"PostgreSQL {builder.Database ?? builder.Username ?? "postgres"} at {builder.Host}:{builder.Port}";
        DataSource = NpgsqlDataSource.Create(builder);
        try
        {
            Migrate();
        }
        catch
        {
            DataSource.Dispose();
            throw;
        }
    }

    /// <summary>The pooled source of connections, shared with the coordination services (leases, presence, notifications).</summary>
    public NpgsqlDataSource DataSource { get; }

    public override string Description { get; }

    public override string ForUpdate => " FOR UPDATE";

    public override string ForShare => " FOR SHARE";

    public override DbConnection Open() => DataSource.OpenConnection();

    public override bool IsUniqueViolation(DbException exception) => exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

    public override object? Time(DateTimeOffset? value) => value?.ToUniversalTime();

    public override DateTimeOffset ReadTime(DbDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.GetFieldValue<DateTimeOffset>(ordinal);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            DataSource.Dispose();
        base.Dispose(disposing);
    }

    private void Migrate()
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        Execute(c, tx, "SELECT pg_advisory_xact_lock(@k)", ("k", MigrationLock));
        Execute(c, tx, "CREATE TABLE IF NOT EXISTS ferret_schema (version integer NOT NULL)");
        int version = (int)Count(c, tx, "SELECT COALESCE(MAX(version), 0) FROM ferret_schema");
        if (version > SchemaVersion)
            throw new InvalidDataException($"Round log {Description} has schema version {version}; this coordinator knows up to {SchemaVersion}.");
        if (version < 1)
        {
            Execute(c, tx, """
                CREATE TABLE experiments (
                    id text PRIMARY KEY, name text NOT NULL, algorithm text NOT NULL, descriptor bytea NOT NULL,
                    state text NOT NULL, rounds integer NOT NULL, artifact_fingerprint text NOT NULL,
                    created_utc timestamptz NOT NULL, ended_utc timestamptz, server_state bytea);
                CREATE TABLE clients (
                    id text PRIMARY KEY, name text NOT NULL, token_sha256 text NOT NULL UNIQUE,
                    enrolled_utc timestamptz NOT NULL, capabilities text, revoked boolean NOT NULL DEFAULT FALSE);
                CREATE TABLE enrolment_tokens (
                    token_sha256 text PRIMARY KEY, label text NOT NULL, created_utc timestamptz NOT NULL,
                    expires_utc timestamptz NOT NULL, client_id text REFERENCES clients(id));
                CREATE TABLE rounds (
                    experiment_id text NOT NULL REFERENCES experiments(id), round integer NOT NULL, state text NOT NULL,
                    opened_utc timestamptz NOT NULL, deadline_utc timestamptz NOT NULL, closed_utc timestamptz, global_update bytea,
                    aggregated integer NOT NULL DEFAULT 0, missing integer NOT NULL DEFAULT 0, metrics text,
                    PRIMARY KEY (experiment_id, round));
                CREATE TABLE assignments (
                    experiment_id text NOT NULL, round integer NOT NULL, client_id text NOT NULL REFERENCES clients(id),
                    state text NOT NULL, packet_sha256 text, packet_bytes bigint NOT NULL DEFAULT 0, received_utc timestamptz,
                    reason text, train_loss double precision, packet bytea,
                    PRIMARY KEY (experiment_id, round, client_id),
                    FOREIGN KEY (experiment_id, round) REFERENCES rounds(experiment_id, round));
                CREATE TABLE fingerprints (
                    experiment_id text NOT NULL, round integer NOT NULL, client_id text NOT NULL, fingerprint text NOT NULL,
                    reported_utc timestamptz NOT NULL, PRIMARY KEY (experiment_id, round, client_id));
                CREATE TABLE rejections (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, experiment_id text, round integer, client_id text,
                    reason text NOT NULL, bytes bigint NOT NULL, at_utc timestamptz NOT NULL);
                CREATE INDEX assignments_by_client ON assignments (client_id, experiment_id, round);
                CREATE INDEX rejections_by_experiment ON rejections (experiment_id, id);
                CREATE TABLE coordinators (
                    instance_id text PRIMARY KEY, started_utc timestamptz NOT NULL, seen_utc timestamptz NOT NULL);
                CREATE TABLE experiment_leases (
                    experiment_id text PRIMARY KEY, owner text NOT NULL, acquired_utc timestamptz NOT NULL, expires_utc timestamptz NOT NULL);
                CREATE TABLE presence (
                    connection_id text PRIMARY KEY, instance_id text NOT NULL, client_id text NOT NULL, experiment_id text NOT NULL);
                CREATE INDEX presence_by_experiment ON presence (experiment_id, client_id);
                CREATE INDEX presence_by_instance ON presence (instance_id);
                """);
        }
        if (version < 2)
        {
            // Dashboards: access keys and one-time sign-in codes.
            Execute(c, tx, """
                CREATE TABLE access_keys (
                    id text PRIMARY KEY, label text NOT NULL, role text NOT NULL, key_sha256 text NOT NULL UNIQUE, created_utc timestamptz NOT NULL,
                    expires_utc timestamptz, revoked boolean NOT NULL DEFAULT FALSE);
                CREATE TABLE sign_in_codes (
                    code_sha256 text PRIMARY KEY, role text NOT NULL, label text NOT NULL, created_utc timestamptz NOT NULL, expires_utc timestamptz NOT NULL,
                    key_id text REFERENCES access_keys(id));
                """);
        }
        if (version < 3)
        {
            // Private aggregation: each private round's public numbers and secure stage, and the clients' stage messages.
            Execute(c, tx, """
                CREATE TABLE private_rounds (
                    experiment_id text NOT NULL, round integer NOT NULL, eligible integer NOT NULL, assigned integer NOT NULL,
                    clip_norm double precision NOT NULL, stage text NOT NULL, stage_deadline_utc timestamptz NOT NULL,
                    PRIMARY KEY (experiment_id, round));
                CREATE TABLE private_round_messages (
                    experiment_id text NOT NULL, round integer NOT NULL, client_id text NOT NULL, stage text NOT NULL,
                    payload bytea NOT NULL, received_utc timestamptz NOT NULL,
                    PRIMARY KEY (experiment_id, round, stage, client_id));
                """);
        }
        if (version < SchemaVersion)
        {
            Execute(c, tx, "DELETE FROM ferret_schema");
            Execute(c, tx, "INSERT INTO ferret_schema (version) VALUES (@v)", ("v", SchemaVersion));
        }
        tx.Commit();
    }
}
