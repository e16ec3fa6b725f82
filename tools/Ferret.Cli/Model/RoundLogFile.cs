using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Microsoft.Data.Sqlite;

namespace Ferret.Cli.Model;

/// <summary>
/// A coordinator's SQLite round log (or a copy of it) opened read-only, for what rebuilding a model needs: an
/// experiment's descriptor, its completed global updates, its closed rounds and the fingerprints participants
/// reported. Reads the coordinator's schema versions 1 to 3 (2 added access keys, 3 the private-round tables; the
/// tables read here are the same in all) and refuses any other with a clear line.
/// </summary>
internal sealed class RoundLogFile : IDisposable
{
    private const int OldestSchema = 1;
    private const int NewestSchema = 3;
    private readonly SqliteConnection _connection;

    private RoundLogFile(string path, SqliteConnection connection)
    {
        Path = path;
        _connection = connection;
    }

    public string Path { get; }

    public static RoundLogFile Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException($"Round log '{full}' does not exist.", full);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = full, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        try
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT user_version FROM pragma_user_version";
            long version = (long)(cmd.ExecuteScalar() ?? 0L);
            if (version is < OldestSchema or > NewestSchema)
                throw new InvalidDataException($"'{full}' has round-log schema version {version}; this ferret reads versions {OldestSchema} to {NewestSchema}.");
            return new RoundLogFile(full, connection);
        }
        catch (SqliteException e)
        {
            connection.Dispose();
            throw new InvalidDataException($"'{full}' is not a readable round log: {e.Message}", e);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public ExperimentDescriptor Descriptor(string experimentId)
    {
        using var cmd = Command("SELECT descriptor FROM experiments WHERE id = $e", ("$e", experimentId));
        if (cmd.ExecuteScalar() is byte[] bytes)
            return Wire.Deserialize<ExperimentDescriptor>(bytes);
        using var list = Command("SELECT id FROM experiments ORDER BY created_utc DESC LIMIT 5");
        using var rd = list.ExecuteReader();
        var ids = new List<string>();
        while (rd.Read())
            ids.Add(rd.GetString(0));
        throw new KeyNotFoundException($"Round log '{Path}' has no experiment '{experimentId}'" + (ids.Count > 0 ? $" (it has {string.Join(", ", ids)})." : " (it has none)."));
    }

    /// <summary>The completed global updates in round order.</summary>
    public List<GlobalUpdate> Updates(string experimentId)
    {
        using var cmd = Command("SELECT global_update FROM rounds WHERE experiment_id = $e AND state = 'Completed' ORDER BY round", ("$e", experimentId));
        using var rd = cmd.ExecuteReader();
        var list = new List<GlobalUpdate>();
        while (rd.Read())
            list.Add(Wire.Deserialize<GlobalUpdate>((byte[])rd.GetValue(0)));
        return list;
    }

    /// <summary>The last round that is completed or abandoned (0 when none is).</summary>
    public int LastClosedRound(string experimentId)
    {
        using var cmd = Command("SELECT COALESCE(MAX(round), 0) FROM rounds WHERE experiment_id = $e AND state <> 'Open'", ("$e", experimentId));
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public List<string> Fingerprints(string experimentId, int round)
    {
        using var cmd = Command("SELECT fingerprint FROM fingerprints WHERE experiment_id = $e AND round = $r", ("$e", experimentId), ("$r", round));
        using var rd = cmd.ExecuteReader();
        var list = new List<string>();
        while (rd.Read())
            list.Add(rd.GetString(0));
        return list;
    }

    private SqliteCommand Command(string sql, params (string Name, object Value)[] parameters)
    {
        var cmd = _connection.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
            cmd.Parameters.AddWithValue(name, value);
        return cmd;
    }

    public void Dispose() => _connection.Dispose();
}
