using Linq2DbTestKit.NUnit;

namespace Linq2DbTestKit.Conformance;

/// <summary>
/// A database of a test's own on the run's server, with a schema of its own, prepared as a run prepares its database:
/// for tests of real-commit sessions and the leak check that need triggers, inheritance or leaks of their own without
/// touching the run's database. Disposing it drops it.
/// </summary>
public sealed class OwnDatabase : IAsyncDisposable
{
    OwnDatabase(TestDatabase database) => Database = database;

    public TestDatabase Database { get; }

    /// <summary>
    /// Creates the database, runs <paramref name="schema"/> in it (committed), and records its prepared state; on the run's
    /// server, or as <paramref name="serverConnectionString"/> connects to it (with other driver settings, say).
    /// </summary>
    public static async Task<OwnDatabase> CreateAsync(string schema, string? serverConnectionString = null)
    {
        var provider = TestRun.Database.Provider;
        var database = await TestDatabase.CreateAsync(provider, TestDatabaseOptions.FromEnvironment(provider) with { ConnectionString = serverConnectionString ?? TestRun.Database.ServerConnectionString });
        try
        {
            await Outside.ExecuteAsync(database, schema);
            await database.PrepareRealCommitsAsync(CancellationToken.None);
            await database.RecordPreparedStateAsync();
            return new OwnDatabase(database);
        }
        catch
        {
            await database.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <paramref name="sql"/> on a connection of its own, outside any scope or session: what it writes is committed.</summary>
    public Task<int> ExecuteAsync(string sql) => Outside.ExecuteAsync(Database, sql);

    /// <summary>The first value <paramref name="sql"/> returns.</summary>
    public async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = Outside.Open(Database);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync();
    }

    /// <summary>Every row of every table, each sequence and identity (and on PostgreSQL each materialized view and the large objects).</summary>
    public Task<IReadOnlyDictionary<string, string>> StateAsync() => Outside.StateAsync(Database);

    /// <summary>Runs <paramref name="work"/> in a real-commit session, on connections of its own made with the database's connection string, then resets.</summary>
    public async Task<IReadOnlyList<string>> InSessionAsync(params string[] work)
    {
        await using var session = await Database.BeginRealCommitsAsync();
        foreach (var sql in work)
            await ExecuteAsync(sql);
        await session.DisposeAsync();
        return session.RestoredTables;
    }

    public ValueTask DisposeAsync() => Database.DisposeAsync();
}
