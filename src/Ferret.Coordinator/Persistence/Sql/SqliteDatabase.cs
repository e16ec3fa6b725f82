using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>
/// The round log in an embedded SQLite file (WAL, synchronous=FULL): the default for a coordinator on one
/// machine. Write transactions begin IMMEDIATE, so they run one at a time.
/// </summary>
public sealed class SqliteDatabase : SqlDatabase
{
    private const int SchemaVersion = 3;
    private readonly string _connectionString;

    public SqliteDatabase(string databasePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(databasePath);
        var full = Path.GetFullPath(databasePath);
        var dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir))
            throw new DirectoryNotFoundException($"The folder of the round log '{full}' does not exist.");
        DatabasePath = full;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = full,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Migrate();
    }

    public string DatabasePath { get; }

    public override string Description => $"SQLite {DatabasePath}";

    public override string ForUpdate => "";

    public override string ForShare => "";

    public override DbConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000;";
        cmd.ExecuteNonQuery();
        return c;
    }

    public override bool IsUniqueViolation(DbException exception) => exception is SqliteException { SqliteErrorCode: 19 };

    public override object? Time(DateTimeOffset? value) => value?.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    public override DateTimeOffset ReadTime(DbDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return DateTimeOffset.Parse(reader.GetString(ordinal), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
    }

    private void Migrate()
    {
        using var c = Open();
        Execute(c, null, "PRAGMA journal_mode = WAL;");
        using var tx = c.BeginTransaction();
        int version = (int)Count(c, tx, "SELECT user_version FROM pragma_user_version");
        if (version > SchemaVersion)
            throw new InvalidDataException($"Round log {Description} has schema version {version}; this coordinator knows up to {SchemaVersion}.");
        if (version < 1)
        {
            Execute(c, tx, """
                CREATE TABLE experiments (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, algorithm TEXT NOT NULL, descriptor BLOB NOT NULL,
                    state TEXT NOT NULL, rounds INTEGER NOT NULL, artifact_fingerprint TEXT NOT NULL,
                    created_utc TEXT NOT NULL, ended_utc TEXT, server_state BLOB);
                CREATE TABLE clients (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
                    enrolled_utc TEXT NOT NULL, capabilities TEXT, revoked INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE enrolment_tokens (
                    token_sha256 TEXT PRIMARY KEY, label TEXT NOT NULL, created_utc TEXT NOT NULL,
                    expires_utc TEXT NOT NULL, client_id TEXT REFERENCES clients(id));
                CREATE TABLE rounds (
                    experiment_id TEXT NOT NULL REFERENCES experiments(id), round INTEGER NOT NULL, state TEXT NOT NULL,
                    opened_utc TEXT NOT NULL, deadline_utc TEXT NOT NULL, closed_utc TEXT, global_update BLOB,
                    aggregated INTEGER NOT NULL DEFAULT 0, missing INTEGER NOT NULL DEFAULT 0, metrics TEXT,
                    PRIMARY KEY (experiment_id, round));
                CREATE TABLE assignments (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL REFERENCES clients(id),
                    state TEXT NOT NULL, packet_sha256 TEXT, packet_bytes INTEGER NOT NULL DEFAULT 0, received_utc TEXT,
                    reason TEXT, train_loss REAL, packet BLOB,
                    PRIMARY KEY (experiment_id, round, client_id),
                    FOREIGN KEY (experiment_id, round) REFERENCES rounds(experiment_id, round));
                CREATE TABLE fingerprints (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
                    reported_utc TEXT NOT NULL, PRIMARY KEY (experiment_id, round, client_id));
                CREATE TABLE rejections (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment_id TEXT, round INTEGER, client_id TEXT,
                    reason TEXT NOT NULL, bytes INTEGER NOT NULL, at_utc TEXT NOT NULL);
                CREATE INDEX assignments_by_client ON assignments (client_id, experiment_id, round);
                """);
        }
        if (version < 2)
        {
            // Dashboards: access keys, one-time sign-in codes, the rejection log by experiment.
            Execute(c, tx, """
                CREATE TABLE access_keys (
                    id TEXT PRIMARY KEY, label TEXT NOT NULL, role TEXT NOT NULL, key_sha256 TEXT NOT NULL UNIQUE, created_utc TEXT NOT NULL,
                    expires_utc TEXT, revoked INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE sign_in_codes (
                    code_sha256 TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL, created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL,
                    key_id TEXT REFERENCES access_keys(id));
                CREATE INDEX rejections_by_experiment ON rejections (experiment_id, id);
                """);
        }
        if (version < 3)
        {
            // Private aggregation: each private round's public numbers and secure stage, and the clients' stage messages.
            Execute(c, tx, """
                CREATE TABLE private_rounds (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, eligible INTEGER NOT NULL, assigned INTEGER NOT NULL,
                    clip_norm REAL NOT NULL, stage TEXT NOT NULL, stage_deadline_utc TEXT NOT NULL,
                    PRIMARY KEY (experiment_id, round));
                CREATE TABLE private_round_messages (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL, stage TEXT NOT NULL,
                    payload BLOB NOT NULL, received_utc TEXT NOT NULL,
                    PRIMARY KEY (experiment_id, round, stage, client_id));
                """);
        }
        if (version < SchemaVersion)
            Execute(c, tx, $"PRAGMA user_version = {SchemaVersion};");
        tx.Commit();
    }
}
