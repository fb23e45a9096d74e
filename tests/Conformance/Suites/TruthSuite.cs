using System.Data.Common;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Where a scope cannot do what production would, it says so at once, naming what happened and the way out: a second
/// connection that wants the one session while a result is read, a statement still queued when the test ends, a cast to
/// the driver's connection, a savepoint statement outside a transaction. Bulk copies and concurrent transactions take
/// their turns without breaking the session.
/// </summary>
public abstract class TruthSuite : ConformanceTest
{
    bool IsPostgres => Scope.Database.Provider.Name == "postgres";

    string Sleep(double seconds)
    {
        if (IsPostgres)
            return $"SELECT pg_sleep({seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)})";
        BabelfishDifference.NoWaitFor.SkipHere();
        return $"WAITFOR DELAY '00:00:{seconds:00.000}'";
    }

    string SavepointSql(string action, string name) => (action, IsPostgres) switch
    {
        ("save", true) => $"SAVEPOINT {name}",
        ("save", false) => $"SAVE TRANSACTION {name}",
        ("rollback", true) => $"ROLLBACK TO SAVEPOINT {name}",
        ("rollback", false) => $"ROLLBACK TRANSACTION {name}",
        _ => throw new ArgumentOutOfRangeException(nameof(action)),
    };

    static async Task<int> RunAsync(DbConnection connection, string sql, DbTransaction? transaction = null)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        return await command.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task A_second_connection_that_writes_while_a_result_is_read_goes_on_and_the_result_reads_to_its_end()
    {
        using (var db = NewShop())
        {
            for (var i = 0; i < 3; i++)
                db.Insert(new Item { Name = Name($"row-{i}") });
        }

        await using var reading = Scope.OpenConnection();
        await using var writing = Scope.OpenConnection();
        await using var query = reading.CreateCommand();
        query.CommandText = $"SELECT name FROM items WHERE name LIKE '{Tag}%' ORDER BY name";
        await using var reader = await query.ExecuteReaderAsync();
        Assert.That(await reader.ReadAsync(), Is.True);
        Assert.That(reader.GetString(0), Is.EqualTo(Name("row-0")));

        Assert.That(await RunAsync(writing, $"INSERT INTO items (name, quantity) VALUES ('{Name("meanwhile")}', 1)"), Is.EqualTo(1), "in production another connection");

        var rest = new List<string> { reader.GetString(0) };
        while (await reader.ReadAsync())
            rest.Add(reader.GetString(0));
        Assert.That(rest, Is.EqualTo(new[] { Name("row-0"), Name("row-1"), Name("row-2") }), "the result goes on from where it stood, as read before the insert");
        Assert.That(Scope.Trace, Does.Contain("the rest of it (3 rows) read into memory"));
    }

    [Test]
    public async Task A_second_connection_while_a_sequential_access_result_is_read_is_refused_naming_both_and_why()
    {
        await using var reading = Scope.OpenConnection();
        await using var writing = Scope.OpenConnection();
        await using var query = reading.CreateCommand();
        query.CommandText = "SELECT 1 UNION ALL SELECT 2";
        await using var reader = await query.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess);
        await reader.ReadAsync();

        Assert.That(() => RunAsync(writing, "SELECT 3"),
            Throws.InvalidOperationException.With.Message.Contains("is still reading a result").And.Message.Contains("connection #").And.Message.Contains("SequentialAccess"));

        await reader.DisposeAsync();
        Assert.That(await RunAsync(writing, $"INSERT INTO items (name, quantity) VALUES ('{Name("after")}', 1)"), Is.EqualTo(1), "once the result is read, the other connection goes on");
    }

    [Test]
    public async Task A_statement_still_queued_when_the_test_ends_says_the_test_ended_while_it_waited()
    {
        await using var first = Scope.OpenConnection();
        await using var second = Scope.OpenConnection();
        await using var slow = first.CreateCommand();
        slow.CommandText = Sleep(0.3);
        await using var queued = second.CreateCommand();
        queued.CommandText = "SELECT 1";

        // The slow statement holds the scope's connection as soon as it starts; the second one waits its turn, un-awaited.
        var running = slow.ExecuteNonQueryAsync();
        var waiting = queued.ExecuteScalarAsync();
        await Scope.DisposeAsync();

        await running;
        Assert.That(() => waiting, Throws.InvalidOperationException.With.Message.Contains("The test ended while").And.Message.Contains("did not await"));
    }

    [Test]
    public void Casting_a_scopes_connection_to_the_drivers_fails_by_the_kits_type_name_and_GetDriverConnection_reaches_it()
    {
        using var db = NewShop();
        var connection = db.OpenDbConnection();

        Assert.That(connection.GetType().FullName, Is.EqualTo("Linq2DbTestKit.Internal.TestScopeConnection"), "what a failed cast names");
        Assert.That(TestScope.GetDriverConnection(connection).GetType().Namespace, Is.AnyOf("Npgsql", "Microsoft.Data.SqlClient"));
        Assert.That(TestScope.GetDriverConnection(connection).State, Is.EqualTo(System.Data.ConnectionState.Open));
    }

    [Test]
    public async Task Savepoint_statements_the_application_sends_inside_its_own_transaction_run_and_are_tracked()
    {
        await using var connection = Scope.OpenConnection();
        await using var transaction = await connection.BeginTransactionAsync();
        await RunAsync(connection, $"INSERT INTO items (name, quantity) VALUES ('{Name("kept")}', 1)", transaction);
        await RunAsync(connection, SavepointSql("save", "batch_item"), transaction);
        await RunAsync(connection, $"INSERT INTO items (name, quantity) VALUES ('{Name("undone")}', 1)", transaction);
        await RunAsync(connection, SavepointSql("rollback", "batch_item"), transaction);
        await transaction.CommitAsync();

        using var db = NewShop();
        Assert.That(await NamesAsync(db), Is.EqualTo(new[] { "kept" }));
        Assert.That(Scope.Trace, Does.Contain("the application's own savepoint inside"));
    }

    [TestCase("save")]
    [TestCase("rollback")]
    public async Task A_savepoint_statement_that_names_one_of_the_kits_own_savepoints_is_refused(string action)
    {
        await using var connection = Scope.OpenConnection();
        await using var transaction = await connection.BeginTransactionAsync();
        await RunAsync(connection, $"INSERT INTO items (name, quantity) VALUES ('{Name("kept")}', 1)", transaction);

        Assert.That(() => RunAsync(connection, SavepointSql(action, "testkit_1"), transaction),
            Throws.InvalidOperationException.With.Message.Contains("names testkit_1, one of the kit's own savepoints"));
        await transaction.CommitAsync();
        using var db = NewShop();
        Assert.That(await NamesAsync(db), Is.EqualTo(new[] { "kept" }), "the kit's bookkeeping is intact: the commit kept the row");
    }

    [Test]
    public async Task A_statement_no_transaction_may_hold_is_refused_with_the_way_that_works()
    {
        await using var connection = Scope.OpenConnection();

        Assert.That(() => RunAsync(connection, $"CREATE DATABASE {Tag}_copy"),
            Throws.InvalidOperationException.With.Message.Contains("sent CREATE DATABASE, which").And.Message.Contains("runs only outside a transaction")
                .And.Message.Contains("[RealCommits]").And.Message.Contains("does not derive from DatabaseTest"));
        using var db = NewShop();
        db.Insert(new App.Item { Name = Name("after") });
        Assert.That(await NamesAsync(db), Is.EqualTo(new[] { "after" }), "nothing reached the server: the scope goes on");
    }

    [Test]
    public async Task A_reader_asked_to_close_its_connection_closes_the_applications_handle_and_the_scope_goes_on()
    {
        // Dapper runs its query with CommandBehavior.CloseConnection when it opened the connection itself.
        await using var connection = Scope.OpenConnection();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"SELECT COUNT(*) FROM items WHERE name LIKE '{Tag}%'";
            await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.CloseConnection);
            while (await reader.ReadAsync())
                Assert.That(Convert.ToInt64(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture), Is.Zero);
        }

        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed), "the handle is closed, as the driver would close its connection");
        using var db = NewShop();
        db.Insert(new App.Item { Name = Name("after") });
        Assert.That(await NamesAsync(db), Is.EqualTo(new[] { "after" }), "the scope's own connection stayed open");
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_savepoint_statement_outside_a_transaction_is_refused_as_production_would_refuse_it()
    {
        await using var connection = Scope.OpenConnection();

        Assert.That(() => RunAsync(connection, SavepointSql("save", "lonely")),
            Throws.InvalidOperationException.With.Message.Contains("outside any transaction of its own").And.Message.Contains("Begin a transaction first"));
    }

    [Test]
    public async Task A_reader_left_open_when_the_test_ends_is_closed_and_the_scope_ends_cleanly()
    {
        await using var connection = Scope.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1 UNION ALL SELECT 2";
        var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();

        Assert.That(async () => await Scope.DisposeAsync(), Throws.Nothing);
        Assert.That(Scope.Trace, Does.Contain("a data reader was still open when the test ended"));
    }

    [Test]
    public async Task The_scopes_Db_disposed_by_the_test_is_made_again()
    {
        using (var db = Scope.Db)
            await db.InsertAsync(new Item { Name = Name("first") });

        await Scope.Db.InsertAsync(new Item { Name = Name("second") });

        using var check = NewShop();
        Assert.That(await NamesAsync(check), Is.EqualTo(new[] { "first", "second" }));
    }

    [Test]
    public async Task A_provider_specific_bulk_copy_takes_turns_with_concurrent_queries()
    {
        BabelfishDifference.BulkCopyColumnList.SkipHere();
        using var copying = NewShop();
        using var querying = NewShop();
        var items = Enumerable.Range(1, 2000).Select(i => new Item { Name = Name($"bulk-{i:D5}"), Quantity = i }).ToArray();

        var copy = Task.Run(() => copying.BulkCopyAsync(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, items));
        var counting = Task.Run(async () =>
        {
            var counts = new List<int>();
            for (var i = 0; i < 20; i++)
                counts.Add(await querying.Items.CountAsync(item => item.Name.StartsWith(Tag)));
            return counts;
        });

        Assert.That((await copy).RowsCopied, Is.EqualTo(2000));
        Assert.That(await counting, Is.All.EqualTo(0).Or.EqualTo(2000), "each query ran before the copy or after it, never during");
    }

    [Test]
    public async Task A_commit_racing_the_rollback_of_the_transaction_it_nests_in_never_breaks_the_session()
    {
        var rollbackCameFirst = false;
        for (var round = 0; round < 50; round++)
        {
            using var outerDb = NewShop();
            using var innerDb = NewShop();
            var outer = await outerDb.BeginTransactionAsync();
            var inner = await innerDb.BeginTransactionAsync();
            await innerDb.InsertAsync(new Item { Name = Name($"race-{round}") });

            var commit = Task.Run(() => inner.CommitAsync());
            var rollback = Task.Run(() => outer.RollbackAsync());
            await rollback;
            try
            {
                await commit;
            }
            catch (TestScopeException exception) when (exception.Message.Contains("rolled back because", StringComparison.Ordinal))
            {
                // The rollback came first and took the inner transaction with it; its commit said so.
                rollbackCameFirst = true;
                await inner.RollbackAsync();
            }

            Assert.That(await outerDb.Items.CountAsync(i => i.Name.StartsWith(Tag)), Is.Zero, $"round {round}: the outer rollback undid the inner transaction either way");
        }

        if (rollbackCameFirst)
            Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("behaved differently from production"));
        else
            await Scope.DisposeAsync();
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero);
    }
}

/// <summary>
/// A transaction ended behind the kit's back stops the test at the next thing it does, saying rows may have been
/// committed. Not parallel: the test commits a row on purpose, and removes it.
/// </summary>
[NonParallelizable]
public abstract class TransactionEndedSuite : ConformanceTest
{
    [Test]
    public async Task A_commit_on_the_drivers_connection_stops_the_test_at_its_next_statement_saying_rows_may_be_committed()
    {
        Assume.That(Scope.Database.Provider.Name, Is.EqualTo("postgres"), "SqlClient refuses a command without the transaction; SQL Server's case is a test of its own");
        using var db = NewShop();
        await db.InsertAsync(new Item { Name = Name("committed-behind-the-kits-back") });
        try
        {
            await using (var command = TestScope.GetDriverConnection(db.OpenDbConnection()).CreateCommand())
            {
                command.CommandText = "COMMIT";
                await command.ExecuteNonQueryAsync();
            }

            Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>()
                .With.Message.Contains("no longer open").And.Message.Contains("may be committed"));
            Assert.That(() => db.Insert(new Item { Name = Name("after") }), Throws.InstanceOf<TestScopeException>(), "nothing more runs in this test");
            Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>(), "the end of the test says so too");
            Assert.That(await Outside.CountItemsAsync(Tag), Is.EqualTo(1), "the row was committed: the kit said so instead of passing");
        }
        finally
        {
            await Outside.ExecuteAsync($"DELETE FROM items WHERE name LIKE '{Tag}%'");
        }
    }
}
