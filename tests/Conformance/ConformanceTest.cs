using System.Data;
using System.Data.Common;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance;

public enum Mode
{
    Sync,
    Async,
}

/// <summary>How application code ends its transactions: through the transaction object, or the DataConnection's own methods.</summary>
public enum TransactionCalls
{
    TransactionObject,
    DataConnectionMethods,
}

/// <summary>
/// What every conformance suite shares: a tag that makes each test's rows its own, the application's context on the
/// test's scope, and the look from outside the kit after the scope has ended.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public abstract class ConformanceTest : DatabaseTest
{
    /// <summary>A prefix of this test's item names; nothing else in the run uses it.</summary>
    protected string Tag { get; } = $"t{Guid.NewGuid():N}"[..13];

    protected ShopDb NewShop() => new(Scope.Options);

    protected string Name(string suffix) => $"{Tag}-{suffix}";

    /// <summary>The names of this test's items that <paramref name="db"/> sees, in order.</summary>
    protected async Task<string[]> NamesAsync(ShopDb db, Mode mode = Mode.Sync)
    {
        var query = db.Items.Where(i => i.Name.StartsWith(Tag)).OrderBy(i => i.Name).Select(i => i.Name);
        var names = mode == Mode.Async ? await query.ToArrayAsync() : query.ToArray();
        return names.Select(n => n[(Tag.Length + 1)..]).ToArray();
    }

    /// <summary>
    /// Ends the test's scope now, which must fail with a divergence from production saying <paramref name="says"/>, and
    /// checks from outside that none of this test's rows remain.
    /// </summary>
    protected async Task EndScopeAndAssertDivergedAsync(string says)
    {
        Assert.That(async () => await Scope.DisposeAsync(),
            Throws.InstanceOf<TestScopeException>().With.Message.Contains("behaved differently from production").And.Message.Contains(says));
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "rows of this test remain in the database after its scope ended");
    }

    /// <summary>Ends the test's scope now and checks, on a connection of its own, that none of this test's rows remain.</summary>
    protected async Task EndScopeAndAssertNothingLeftAsync()
    {
        await Scope.DisposeAsync();
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "rows of this test remain in the database after its scope ended");
    }
}

/// <summary>The run's database seen from a plain connection that belongs to no scope.</summary>
public static class Outside
{
    /// <summary>The application name of the checks' own connections: they bypass scopes on purpose, and are not reported for it.</summary>
    const string ApplicationName = "linq2db-testkit-checks";

    public static DbConnection Open() => Open(TestRun.Database);

    /// <summary>A plain connection to <paramref name="database"/> that belongs to no scope.</summary>
    public static DbConnection Open(TestDatabase database)
    {
        var connection = database.Provider.CreateConnection(database.Provider.ForDatabase(database.ConnectionString, null, ApplicationName));
        connection.Open();
        return connection;
    }

    /// <summary>A plain connection to the server's database named in the run's connection string, for creating and dropping databases.</summary>
    public static DbConnection OpenServer()
    {
        var provider = TestRun.Database.Provider;
        var given = TestRun.Database.ServerConnectionString;
        var connection = provider.CreateConnection(provider.ForDatabase(given, null, ApplicationName));
        connection.Open();
        return connection;
    }

    /// <summary>The password of the run's connection string.</summary>
    public static string? Password() => TestRun.Database.Password;

    public static Task<long> CountItemsAsync(string tag) => CountAsync("items", tag);

    /// <summary>The rows of <paramref name="table"/> whose name begins with <paramref name="tag"/>; every row, when it is empty.</summary>
    public static async Task<long> CountAsync(string table, string tag = "")
    {
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM {table} WHERE name LIKE @tag";
        var parameter = command.CreateParameter();
        parameter.ParameterName = "tag";
        parameter.Value = tag + "%";
        command.Parameters.Add(parameter);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Every committed row of every table of the run's database (not the kit's own schema), each table's rows as text in
    /// order, and where each identity and sequence stands: what a reset must restore exactly.
    /// </summary>
    public static Task<IReadOnlyDictionary<string, string>> StateAsync() => StateAsync(TestRun.Database);

    /// <summary>
    /// What <see cref="StateAsync()"/> reads, of <paramref name="database"/>; on PostgreSQL each table's own rows
    /// (<c>ONLY</c>: an inheritance parent without its children's), its materialized views and its large objects too.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, string>> StateAsync(TestDatabase database)
    {
        var postgres = database.Provider.Name == "postgres";
        await using var connection = Open(database);
        var tables = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' " +
                               "AND table_schema NOT IN ('pg_catalog', 'information_schema', 'testkit', 'sys') ORDER BY 1, 2";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                tables.Add($"\"{reader.GetString(0)}\".\"{reader.GetString(1)}\"");
        }

        if (postgres)
        {
            await using var views = connection.CreateCommand();
            views.CommandText = "SELECT format('%I.%I', schemaname, matviewname) FROM pg_matviews WHERE ispopulated ORDER BY 1";
            await using var reader = await views.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                tables.Add(reader.GetString(0));
            tables.Add("pg_catalog.pg_largeobject_metadata");
        }

        var state = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var table in tables)
        {
            await using var select = connection.CreateCommand();
            select.CommandText = postgres ? $"SELECT * FROM ONLY {table}" : $"SELECT * FROM {table}";
            var rows = new List<string>();
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                rows.Add(string.Join("|", Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
            rows.Sort(StringComparer.Ordinal);
            state[table] = string.Join("\n", rows);
        }

        await using (var counters = connection.CreateCommand())
        {
            counters.CommandText = !postgres
                ? "SELECT 'identity ' + OBJECT_NAME(object_id), CAST(last_value AS bigint) FROM sys.identity_columns WHERE OBJECTPROPERTY(object_id, 'IsMSShipped') = 0 AND OBJECT_SCHEMA_NAME(object_id) <> 'testkit' " +
                  "UNION ALL SELECT 'sequence ' + name, CAST(current_value AS bigint) FROM sys.sequences"
                : "SELECT 'sequence ' || c.relname, pg_sequence_last_value(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname <> 'testkit'";
            await using var reader = await counters.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                state[reader.GetString(0)] = reader.IsDBNull(1) ? "never used" : Convert.ToString(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture)!;
        }

        return state;
    }

    public static Task<int> ExecuteAsync(string sql) => ExecuteAsync(TestRun.Database, sql);

    /// <summary>Runs <paramref name="sql"/> on a plain connection to <paramref name="database"/>: what it writes is committed.</summary>
    public static async Task<int> ExecuteAsync(TestDatabase database, string sql)
    {
        await using var connection = Open(database);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteNonQueryAsync();
    }
}

/// <summary>Application code in the four shapes the suites run it: sync or async, through the transaction object or the DataConnection.</summary>
public sealed class AppCode(Mode mode, TransactionCalls calls)
{
    public Mode Mode => mode;

    public async Task<DataConnectionTransaction> BeginAsync(DataConnection db, IsolationLevel? isolationLevel = null) =>
        (mode, isolationLevel) switch
        {
            (Mode.Sync, null) => db.BeginTransaction(),
            (Mode.Sync, { } level) => db.BeginTransaction(level),
            (Mode.Async, null) => await db.BeginTransactionAsync(),
            (Mode.Async, { } level) => await db.BeginTransactionAsync(level),
            _ => throw new ArgumentOutOfRangeException(nameof(isolationLevel)),
        };

    public async Task CommitAsync(DataConnectionTransaction transaction)
    {
        switch (mode, calls)
        {
            case (Mode.Sync, TransactionCalls.TransactionObject): transaction.Commit(); break;
            case (Mode.Sync, TransactionCalls.DataConnectionMethods): transaction.DataConnection.CommitTransaction(); break;
            case (Mode.Async, TransactionCalls.TransactionObject): await transaction.CommitAsync(); break;
            case (Mode.Async, TransactionCalls.DataConnectionMethods): await transaction.DataConnection.CommitTransactionAsync(); break;
        }
    }

    public async Task RollbackAsync(DataConnectionTransaction transaction)
    {
        switch (mode, calls)
        {
            case (Mode.Sync, TransactionCalls.TransactionObject): transaction.Rollback(); break;
            case (Mode.Sync, TransactionCalls.DataConnectionMethods): transaction.DataConnection.RollbackTransaction(); break;
            case (Mode.Async, TransactionCalls.TransactionObject): await transaction.RollbackAsync(); break;
            case (Mode.Async, TransactionCalls.DataConnectionMethods): await transaction.DataConnection.RollbackTransactionAsync(); break;
        }
    }

    public async Task InsertAsync(ShopDb db, string name)
    {
        var item = new Item { Name = name, Quantity = 1 };
        if (mode == Mode.Async)
            await db.InsertAsync(item);
        else
            db.Insert(item);
    }
}
