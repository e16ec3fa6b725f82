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

    // ---- dashboard access ------------------------------------------------------------------------

    private const string AccessKeyColumns = "id, label, role, created_utc, expires_utc, revoked";

    public void AddAccessKey(AccessKeyRecord key, string keySha256)
    {
        ArgumentNullException.ThrowIfNull(key);
        using var c = db.Open();
        InsertAccessKey(c, null, key, keySha256);
    }

    public AccessKeyRecord? FindAccessKey(string keySha256)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {AccessKeyColumns} FROM access_keys WHERE key_sha256 = @k", ReadAccessKey, ("k", keySha256)).SingleOrDefault();
    }

    public IReadOnlyList<AccessKeyRecord> ListAccessKeys()
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {AccessKeyColumns} FROM access_keys ORDER BY created_utc, id", ReadAccessKey);
    }

    public bool RevokeAccessKey(string id)
    {
        using var c = db.Open();
        return db.Execute(c, null, "UPDATE access_keys SET revoked = TRUE WHERE id = @id", ("id", id)) == 1;
    }

    public void AddSignInCode(string codeSha256, string role, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc)
    {
        using var c = db.Open();
        db.Execute(c, null, "INSERT INTO sign_in_codes (code_sha256, role, label, created_utc, expires_utc) VALUES (@h, @r, @l, @c, @x)",
            ("h", codeSha256), ("r", role), ("l", label), ("c", db.Time(createdUtc)), ("x", db.Time(expiresUtc)));
    }

    public AccessKeyRecord? RedeemSignInCode(string codeSha256, DateTimeOffset nowUtc, Func<string, string, (AccessKeyRecord Key, string KeySha256)> mint)
    {
        ArgumentNullException.ThrowIfNull(mint);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var found = db.Query(c, tx, $"SELECT role, label, expires_utc FROM sign_in_codes WHERE code_sha256 = @h AND key_id IS NULL{db.ForUpdate}",
            r => (Role: r.GetString(0), Label: r.GetString(1), Expires: db.ReadTime(r, 2)), ("h", codeSha256));
        if (found.Count == 0 || found[0].Expires <= nowUtc)
            return null;
        var (key, keySha256) = mint(found[0].Role, found[0].Label);
        InsertAccessKey(c, tx, key, keySha256);
        db.Execute(c, tx, "UPDATE sign_in_codes SET key_id = @k WHERE code_sha256 = @h", ("k", key.Id), ("h", codeSha256));
        tx.Commit();
        return key;
    }

    private void InsertAccessKey(DbConnection c, DbTransaction? tx, AccessKeyRecord key, string keySha256) =>
        db.Execute(c, tx, "INSERT INTO access_keys (id, label, role, key_sha256, created_utc, expires_utc, revoked) VALUES (@id, @l, @r, @k, @c, @x, FALSE)",
            ("id", key.Id), ("l", key.Label), ("r", key.Role), ("k", keySha256), ("c", db.Time(key.CreatedUtc)), ("x", db.Time(key.ExpiresUtc)));

    private AccessKeyRecord ReadAccessKey(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), db.ReadTime(r, 3), db.ReadTimeOrNull(r, 4), r.GetBoolean(5));

    private ClientRecord ReadClient(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), db.ReadTime(r, 2), r.IsDBNull(3) ? null : r.GetString(3), r.GetBoolean(4));
}
