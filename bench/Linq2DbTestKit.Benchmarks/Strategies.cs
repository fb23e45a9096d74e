using Linq2DbTestKit.PostgreSql;
using LinqToDB;
using LinqToDB.Data;
using LinqToDB.DataProvider;
using Npgsql;
using Respawn;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>
/// One test's isolation, start to end, around the same unit of work (<see cref="BenchDb.WorkAsync"/>), for each strategy
/// a user could pick, on the database of one schema size. Every strategy is one test: it begins isolated and leaves
/// nothing behind.
/// </summary>
public sealed class Strategies(int tables)
{
    static int templateCopies;

    TestDatabase _kit = null!;
    TestDatabase _commits = null!;
    IDataProvider _provider = null!;
    string _connectionString = null!;
    Respawner _respawner = null!;
    string _truncate = null!;

    /// <summary>The schema sizes measured; <c>Program</c> creates a database of each before the run.</summary>
    public static IReadOnlyList<int> TableCounts { get; } = [5, 20, 100];

    public int Tables { get; } = tables;

    public static string ServerConnectionString { get; set; } = PostgreSqlDatabaseProvider.Instance.DefaultConnectionString;

    /// <summary>Attaches to the size's database.</summary>
    public async Task SetUpAsync()
    {
        _kit = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
        {
            ConnectionString = ServerConnectionString,
            ExistingDatabase = BenchSchema.Database(Tables),
            AllowExistingDatabase = true,
        });

        _commits = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
        {
            ConnectionString = ServerConnectionString,
            ExistingDatabase = BenchSchema.Commits(Tables),
            AllowExistingDatabase = true,
        });

        // Every strategy connects as the kit's scopes do, but with Npgsql's own reset of a pooled connection, as a
        // hand-written fixture has it: the kit resets in its end batch instead (PostgreSqlDatabaseProvider.ForScopes).
        _connectionString = new NpgsqlConnectionStringBuilder(_kit.ScopeConnectionString) { NoResetOnClose = false }.ConnectionString;
        _provider = _kit.LinqToDBProvider;
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        _respawner = await Respawner.CreateAsync(connection, new RespawnerOptions { DbAdapter = DbAdapter.Postgres, SchemasToInclude = ["public"] });
        _truncate = $"TRUNCATE {string.Join(", ", BenchSchema.TableNames(Tables))} CASCADE";
    }

    public async Task CleanUpAsync()
    {
        await _kit.DisposeAsync();
        await _commits.DisposeAsync();
    }

    /// <summary>Every strategy, by the name the results show: the floor is the one the others are compared with.</summary>
    public IReadOnlyList<(string Name, Func<Task<int>> Run)> All() =>
    [
        ("raw Npgsql, BEGIN … ROLLBACK", RawNpgsql),
        (Floor, FloorAsync),
        (Kit, KitScope),
        (KitTest, KitDatabaseTest),
        ("kit: scope, 3 nested app transactions", KitScopeNested),
        ("kit: scope, statement savepoints", KitScopeStatementSavepoints),
        (RealCommits, KitRealCommits),
        (Respawn, RespawnReset),
        (Truncate, TruncateAll),
        ("CREATE DATABASE … TEMPLATE + DROP", TemplateDatabase),
    ];

    public const string Floor = "floor: linq2db UseTransaction, BEGIN … ROLLBACK";
    public const string Kit = "kit: scope";
    public const string KitTest = "kit: DatabaseTest (scope, current in the flow, bypass watch, end-of-test checks)";
    public const string RealCommits = "kit: real-commit test, reset of the 3 tables it wrote";
    public const string Respawn = "Respawn 7 reset";
    public const string Truncate = "TRUNCATE … CASCADE of all tables";

    /// <summary>Raw Npgsql: a pooled connection, BEGIN, the work as plain SQL, ROLLBACK.</summary>
    public async Task<int> RawNpgsql()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };

        command.CommandText = "INSERT INTO customers (name) VALUES (@name) RETURNING id";
        command.Parameters.AddWithValue("name", "ada");
        var customer = (long)(await command.ExecuteScalarAsync())!;
        for (var order = 0; order < 2; order++)
        {
            command.Parameters.Clear();
            command.CommandText = "INSERT INTO orders (customer_id, total) VALUES (@customer, @total) RETURNING id";
            command.Parameters.AddWithValue("customer", customer);
            command.Parameters.AddWithValue("total", 10 * (order + 1));
            var orderId = (long)(await command.ExecuteScalarAsync())!;
            for (var line = 0; line < 2; line++)
            {
                command.Parameters.Clear();
                command.CommandText = "INSERT INTO order_lines (order_id, product, quantity) VALUES (@order, @product, @quantity)";
                command.Parameters.AddWithValue("order", orderId);
                command.Parameters.AddWithValue("product", "tea");
                command.Parameters.AddWithValue("quantity", line + 1);
                await command.ExecuteNonQueryAsync();
            }
        }

        command.Parameters.Clear();
        command.CommandText = "SELECT COUNT(*) FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE o.customer_id = @customer";
        command.Parameters.AddWithValue("customer", customer);
        var count = (int)(long)(await command.ExecuteScalarAsync())!;
        await transaction.RollbackAsync();
        return count;
    }

    /// <summary>The kit's floor: the application's DataConnection on a raw BEGIN … ROLLBACK with linq2db's UseTransaction, no kit.</summary>
    public async Task<int> FloorAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var db = new BenchDb(new DataOptions().UseTransaction(_provider, transaction));
        var count = await db.WorkAsync();
        await transaction.RollbackAsync();
        return count;
    }

    public async Task<int> KitScope()
    {
        await using var scope = await _kit.BeginScopeAsync();
        await using var db = new BenchDb(scope.Options);
        return await db.WorkAsync();
    }

    /// <summary>
    /// What a test derived from <c>DatabaseTest</c> costs: the NUnit integration's own begin and end around the test,
    /// with the scope current in the flow (so the drivers' diagnostics are watched for bypasses), and the checks at its end.
    /// </summary>
    public async Task<int> KitDatabaseTest()
    {
        var scope = Internal.ScopedTest.Begin(_kit);
        try
        {
            await using var db = new BenchDb(scope.Options);
            return await db.WorkAsync();
        }
        finally
        {
            if (Internal.ScopedTest.End(scope) is { } problems)
                throw new InvalidOperationException(problems);
        }
    }

    /// <summary>The same work with three application transactions nested inside each other: three savepoints, released.</summary>
    public async Task<int> KitScopeNested()
    {
        await using var scope = await _kit.BeginScopeAsync();
        await using var first = new BenchDb(scope.Options);
        await using var second = new BenchDb(scope.Options);
        await using var third = new BenchDb(scope.Options);
        await using var level1 = await first.BeginTransactionAsync();
        await using var level2 = await second.BeginTransactionAsync();
        await using var level3 = await third.BeginTransactionAsync();
        var count = await third.WorkAsync();
        await level3.CommitAsync();
        await level2.CommitAsync();
        await level1.CommitAsync();
        return count;
    }

    public async Task<int> KitScopeStatementSavepoints()
    {
        await using var scope = await _kit.BeginScopeAsync();
        scope.StatementSavepoints = true;
        await using var db = new BenchDb(scope.Options);
        return await db.WorkAsync();
    }

    /// <summary>
    /// The work committed for real in a real-commit session, then the kit's reset: only the tables the session wrote
    /// (the three of the work), found by the triggers the first session installed.
    /// </summary>
    public async Task<int> KitRealCommits()
    {
        await using var session = await _commits.BeginRealCommitsAsync();
        await using var db = new BenchDb(session.Options);
        return await db.WorkAsync();
    }

    /// <summary>The work committed, then Respawn's reset: a DELETE of every table, in foreign-key order.</summary>
    public async Task<int> RespawnReset()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var db = new BenchDb(new DataOptions().UseConnection(_provider, connection));
        var count = await db.WorkAsync();
        await _respawner.ResetAsync(connection);
        return count;
    }

    public async Task<int> TruncateAll()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var db = new BenchDb(new DataOptions().UseConnection(_provider, connection));
        var count = await db.WorkAsync();
        await db.ExecuteAsync(_truncate);
        return count;
    }

    public async Task<int> TemplateDatabase()
    {
        var name = $"testkit_bench_copy_{Interlocked.Increment(ref templateCopies)}";
        await using var admin = new NpgsqlConnection(ServerConnectionString);
        await admin.OpenAsync();
        await BenchSchema.Run(admin, $"CREATE DATABASE {name} TEMPLATE {BenchSchema.Template(Tables)}");

        var connectionString = new NpgsqlConnectionStringBuilder(_connectionString) { Database = name, Pooling = false }.ConnectionString;
        int count;
        await using (var db = new BenchDb(new DataOptions().UseConnectionString(_provider, connectionString)))
            count = await db.WorkAsync();

        await BenchSchema.Run(admin, $"DROP DATABASE {name} WITH (FORCE)");
        return count;
    }
}
