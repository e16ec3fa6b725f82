using System.Data.Common;

namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>The client registry in the round log's database (SQLite or PostgreSQL, same SQL).</summary>
public sealed class SqlClientRegistry(SqlDatabase db) : IClientRegistry
{
    private const string ClientColumns = "id, name, enrolled_utc, capabilities, revoked";

    public void AddEnrolmentToken(string tokenSha256, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc)
    {
        using var c = db.Open();
        db.Execute(c, null, "INSERT INTO enrolment_tokens (token_sha256, label, created_utc, expires_utc) VALUES (@t, @l, @c, @x)",
            ("t", tokenSha256), ("l", label), ("c", db.Time(createdUtc)), ("x", db.Time(expiresUtc)));
    }

    public bool RedeemEnrolmentToken(string enrolmentSha256, ClientRecord client, string clientTokenSha256, DateTimeOffset nowUtc)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var expires = db.Query(c, tx, $"SELECT expires_utc FROM enrolment_tokens WHERE token_sha256 = @t AND client_id IS NULL{db.ForUpdate}",
            r => db.ReadTime(r, 0), ("t", enrolmentSha256));
        if (expires.Count == 0 || expires[0] <= nowUtc)
            return false;
        db.Execute(c, tx, "INSERT INTO clients (id, name, token_sha256, enrolled_utc, capabilities, revoked) VALUES (@id, @n, @t, @e, @cap, FALSE)",
            ("id", client.Id), ("n", client.Name), ("t", clientTokenSha256), ("e", db.Time(client.EnrolledUtc)), ("cap", client.Capabilities));
        db.Execute(c, tx, "UPDATE enrolment_tokens SET client_id = @id WHERE token_sha256 = @t", ("id", client.Id), ("t", enrolmentSha256));
        tx.Commit();
        return true;
    }

    public ClientRecord? FindClientByToken(string tokenSha256)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {ClientColumns} FROM clients WHERE token_sha256 = @t", ReadClient, ("t", tokenSha256)).SingleOrDefault();
    }

    public ClientRecord? GetClient(string id)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {ClientColumns} FROM clients WHERE id = @id", ReadClient, ("id", id)).SingleOrDefault();
    }

    public IReadOnlyList<ClientRecord> ListClients()
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {ClientColumns} FROM clients ORDER BY enrolled_utc, id", ReadClient);
    }

    public HashSet<string> RevokedClientIds()
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT id FROM clients WHERE revoked", r => r.GetString(0)).ToHashSet(StringComparer.Ordinal);
    }

    public void SetClientCapabilities(string clientId, string capabilitiesJson)
    {
        using var c = db.Open();
        db.Execute(c, null, "UPDATE clients SET capabilities = @cap WHERE id = @id", ("cap", capabilitiesJson), ("id", clientId));
    }

    public bool RevokeClient(string clientId)
    {
        using var c = db.Open();
        return db.Execute(c, null, "UPDATE clients SET revoked = TRUE WHERE id = @id", ("id", clientId)) == 1;
    }

    private ClientRecord ReadClient(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), db.ReadTime(r, 2), r.IsDBNull(3) ? null : r.GetString(3), r.GetBoolean(4));
}
