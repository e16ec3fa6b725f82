using System.Data.Common;

namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>
/// The database under the round log: how a connection opens, its schema, and the few places where SQLite and
/// PostgreSQL differ (timestamps, row locks, constraint errors). The round log's SQL is written once against
/// this; values always travel as <c>@name</c> parameters, which both providers accept.
/// </summary>
public abstract class SqlDatabase : IDisposable
{
    /// <summary>Where the log lives, for messages and the health check (never a password).</summary>
    public abstract string Description { get; }

    /// <summary>An open connection; the caller disposes it.</summary>
    public abstract DbConnection Open();

    /// <summary>Appended to a SELECT inside a transaction: holds the rows until it ends (SQLite's write transactions are serial already).</summary>
    public abstract string ForUpdate { get; }

    /// <summary>Like <see cref="ForUpdate"/>, but readers holding it do not block each other.</summary>
    public abstract string ForShare { get; }

    /// <summary>A unique or primary-key constraint refused the statement.</summary>
    public abstract bool IsUniqueViolation(DbException exception);

    /// <summary>A timestamp as this database stores it.</summary>
    public abstract object? Time(DateTimeOffset? value);

    /// <summary>A stored timestamp, in UTC.</summary>
    public abstract DateTimeOffset ReadTime(DbDataReader reader, int ordinal);

    public DateTimeOffset? ReadTimeOrNull(DbDataReader reader, int ordinal)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.IsDBNull(ordinal) ? null : ReadTime(reader, ordinal);
    }

    public DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] args)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(args);
        var cmd = connection.CreateCommand();
        cmd.Transaction = transaction;
#pragma warning disable CA2100 // SQL text is a constant of the round log; values always travel as parameters.
        cmd.CommandText = sql;
#pragma warning restore CA2100
        foreach (var (name, value) in args)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    /// <summary>Runs a statement; the number of rows it touched.</summary>
    public int Execute(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(connection, transaction, sql, args);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>The first column of the first row, or null.</summary>
    public object? Scalar(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(connection, transaction, sql, args);
        var v = cmd.ExecuteScalar();
        return v is DBNull ? null : v;
    }

    /// <summary>An integer result (counts are 64-bit in PostgreSQL, every integer is in SQLite).</summary>
    public long Count(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] args) =>
        Convert.ToInt64(Scalar(connection, transaction, sql, args) ?? 0L, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Every row, read by <paramref name="read"/>.</summary>
    public List<T> Query<T>(DbConnection connection, DbTransaction? transaction, string sql, Func<DbDataReader, T> read,
        params (string Name, object? Value)[] args)
    {
        ArgumentNullException.ThrowIfNull(read);
        using var cmd = Command(connection, transaction, sql, args);
        using var r = cmd.ExecuteReader();
        var list = new List<T>();
        while (r.Read())
            list.Add(read(r));
        return list;
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
