namespace Ferret.Coordinator.Persistence;

/// <summary>
/// Enrolled edge clients and the single-use enrolment tokens that admit them, kept beside the round log (same
/// database). Bearer tokens are never stored, only their SHA-256.
/// </summary>
public interface IClientRegistry
{
    void AddEnrolmentToken(string tokenSha256, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc);

    /// <summary>
    /// Spends an enrolment token and registers the client in one transaction. Returns false when the token
    /// is unknown, expired or already spent.
    /// </summary>
    bool RedeemEnrolmentToken(string enrolmentSha256, ClientRecord client, string clientTokenSha256, DateTimeOffset nowUtc);

    ClientRecord? FindClientByToken(string tokenSha256);

    ClientRecord? GetClient(string id);

    IReadOnlyList<ClientRecord> ListClients();

    /// <summary>Ids of revoked clients (a revoked client may still hold a connection it opened before).</summary>
    HashSet<string> RevokedClientIds();

    void SetClientCapabilities(string clientId, string capabilitiesJson);

    bool RevokeClient(string clientId);

    // ---- dashboard access ------------------------------------------------------------------------

    void AddAccessKey(AccessKeyRecord key, string keySha256);

    AccessKeyRecord? FindAccessKey(string keySha256);

    IReadOnlyList<AccessKeyRecord> ListAccessKeys();

    bool RevokeAccessKey(string id);

    void AddSignInCode(string codeSha256, string role, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc);

    /// <summary>
    /// Spends a one-time sign-in code and stores the access key it buys, in one transaction; <paramref name="mint"/>
    /// makes the key (and its SHA-256) from the code's role and label. Null when the code is unknown, expired or already spent.
    /// </summary>
    AccessKeyRecord? RedeemSignInCode(string codeSha256, DateTimeOffset nowUtc, Func<string, string, (AccessKeyRecord Key, string KeySha256)> mint);
}
