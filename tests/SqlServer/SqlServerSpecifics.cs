using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.Internal;
using Linq2DbTestKit.SqlServer;
using LinqToDB;
using LinqToDB.Data;
using Microsoft.Data.SqlClient;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.SqlServer;

/// <summary>
/// What only SQL Server does: savepoints without release, names of at most 32 characters, statement-level rollback,
/// transactions the server ends (XACT_ABORT, doom, an error while reading), dynamic SQL, SqlBulkCopy's need for the
/// transaction, identity values that outlive a rollback, and the run's database's life.
/// </summary>
/// <remarks>Not parallel: some tests create databases and logins on the server.</remarks>
[NonParallelizable]
public sealed class SqlServerSpecifics : ConformanceTest
{
    int TranCount() => Db.Execute<int>("SELECT @@TRANCOUNT");

    [Test]
    public void Application_transactions_become_save_transaction_and_rollback_transaction_in_one_server_transaction()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        using (var transaction = outer.BeginTransaction())
        {
            using (var nested = inner.BeginTransaction())
            {
                inner.Insert(new Item { Name = Name("rolled-back") });
                Assert.That(TranCount(), Is.EqualTo(2), "savepoints open no transaction of their own: the count is the scope's two");
                nested.Rollback();
            }

            transaction.Commit();
        }

        Assert.That(TranCount(), Is.EqualTo(2), "the test's transaction, opened twice, is still the only one");
        Assert.That(Scope.Trace, Does.Match(@"SAVE TRANSACTION (testkit_\d+)[\s\S]*SAVE TRANSACTION (testkit_\d+)[\s\S]*ROLLBACK TRANSACTION \2[\s\S]*commit → nothing to send"));
        Assert.That(Scope.Trace, Does.Not.Contain("RELEASE"));
    }

    [Test]
    public async Task Databases_created_and_dropped_by_runs_at_the_same_moment_all_come_and_go()
    {
        // Babelfish's CREATE and DROP DATABASE update rows of PostgreSQL's shared catalog: two at once fail now and then
        // with "tuple concurrently updated", as two test runs on one server would; the kit tries again.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            for (var round = 0; round < 2; round++)
            {
                await using var own = await OwnDatabase.CreateAsync("CREATE TABLE numbers (id int NOT NULL)");
                await own.ExecuteAsync("INSERT INTO numbers (id) VALUES (1)");
            }
        })));
    }

    /// <summary>Another session asks for the application lock without waiting long: whether it got it.</summary>
    static async Task<bool> OtherSessionGetsApplicationLock(string resource)
    {
        await using var outside = Outside.Open();
        await using var command = outside.CreateCommand();
        command.CommandText =
            $"DECLARE @result int; EXEC @result = sp_getapplock @Resource = N'{resource}', @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 2000; " +
            $"IF @result >= 0 EXEC sp_releaseapplock @Resource = N'{resource}', @LockOwner = 'Session'; SELECT @result";
        return (int)(await command.ExecuteScalarAsync())! >= 0;
    }

    [Test]
    public async Task A_session_owned_application_lock_is_released_when_the_scope_ends()
    {
        // On Babelfish no scope's connection goes back to the pool, so its session, and the lock, end with the scope
        // whatever the kit does: the test could not fail there.
        BabelfishDifference.RollbackNotReported.SkipHere();
        using (var db = NewShop())
            db.Execute("EXEC sp_getapplock @Resource = N'testkit_session_lock', @LockMode = 'Exclusive', @LockOwner = 'Session'");

        await Scope.DisposeAsync();

        Assert.That(await OtherSessionGetsApplicationLock("testkit_session_lock"), Is.True,
            "another session gets the lock: the rollback leaves a session's lock held, so the scope's connection must not idle in the pool with it");
    }

    [Test]
    public async Task A_session_owned_application_lock_of_the_previous_test_is_free_when_the_next_test_begins()
    {
        BabelfishDifference.RollbackNotReported.SkipHere();
        // The integrations end a test without waiting for its rollback's answer; the next test's begin waits for it.
        var database = Scope.Database;
        await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            for (var round = 0; round < 5; round++)
            {
                var previous = ScopedTest.Begin(database);
                using (var db = new ShopDb(previous.Options))
                {
                    await db.ExecuteAsync(
                        "DECLARE @result int; EXEC @result = sp_getapplock @Resource = @resource, @LockMode = 'Exclusive', @LockOwner = 'Session'",
                        new DataParameter("resource", "testkit_next_test_lock"));
                }
                Assert.That(ScopedTest.End(previous), Is.Null);

                var next = ScopedTest.Begin(database);
                Assert.That(await OtherSessionGetsApplicationLock("testkit_next_test_lock"), Is.True, $"round {round}: the lock of the previous test was still held when the next began");
                Assert.That(ScopedTest.End(next), Is.Null);
            }
        });
    }

    [Test]
    public void Release_is_a_no_op_the_savepoint_stays_usable()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.Transaction!.Save("before");
        db.Insert(new Item { Name = Name("a") });

        db.Transaction.Release("before");
        db.Transaction.Rollback("before");

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "SQL Server has no release: the savepoint was still there to roll back to");
    }

    [Test]
    public void Savepoint_names_stay_within_32_characters_however_many_transactions_a_test_runs()
    {
        Assert.That(((DatabaseProvider)SqlServerDatabaseProvider.Instance).SavepointName(long.MaxValue), Has.Length.LessThanOrEqualTo(SqlServerDatabaseProvider.MaxSavepointNameLength));

        using var db = NewShop();
        for (var i = 0; i < 500; i++)
        {
            using var transaction = db.BeginTransaction();
            if (i % 100 == 0)
                db.Insert(new Item { Name = Name($"{i:D3}") });
            transaction.Commit();
        }

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(5));
    }

    [Test]
    public void An_application_savepoint_name_over_32_characters_is_refused_by_the_kit_and_the_test_goes_on()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();

        Assert.That(() => db.Transaction!.Save(new string('s', 33)), Throws.ArgumentException.With.Message.Contains("at most 32"));
        db.Insert(new Item { Name = Name("after") });
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }

    [Test]
    public void A_savepoint_name_over_32_characters_sent_as_SQL_is_refused_by_the_kit_too()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();

        Assert.That(() => db.Execute($"SAVE TRANSACTION {new string('s', 33)}"), Throws.ArgumentException.With.Message.Contains("at most 32"));
        db.Insert(new Item { Name = Name("after") });
        transaction.Commit();
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }

    [Test]
    public async Task A_write_under_SET_NOCOUNT_ON_that_another_connections_rollback_undoes_fails_the_test()
    {
        // Most stored procedures run with SET NOCOUNT ON, so the driver reports -1 rows; the write still counts.
        using var transactional = NewShop();
        using var other = NewShop();
        using (var transaction = transactional.BeginTransaction())
        {
            other.Execute($"SET NOCOUNT ON; INSERT INTO items (name, quantity) VALUES (N'{Name("autocommitted")}', 1)");
            transaction.Rollback();
        }

        var end = await Assert.ThrowsAsync<TestScopeException>(async () => await Scope.DisposeAsync());
        Assert.That(end!.Message, Does.Contain("wrote outside any transaction of its own").And.Contain("SET NOCOUNT ON; INSERT"));
    }

    [Test]
    public void A_failed_statement_rolls_back_alone_and_the_test_goes_on()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<SqlException>().With.Property("Number").EqualTo(2627).Or.Property("Number").EqualTo(2601));
        db.Insert(new Item { Name = Name("b") });

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(2));
    }

    static void ExpectEnded(Func<object?> next) =>
        Assert.That(() => next(), Throws.InstanceOf<TestScopeException>()
            .With.Message.Contains("committed or rolled").And.Message.Contains("nothing more can run"));

    [Test]
    public async Task With_XACT_ABORT_a_failure_ends_the_tests_transaction_and_the_next_statement_says_so()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        db.Execute("SET XACT_ABORT ON");

        // With XACT_ABORT ON, an error rolls back the whole transaction: the test's. SqlClient then lets go of it, and a
        // later statement would run in autocommit and commit for good.
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<SqlException>());

        ExpectEnded(() => db.Insert(new Item { Name = Name("b") }));
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>(), "the end of the test says so too");
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "nothing ran after the server ended the transaction");
    }

    [Test]
    public async Task A_doomed_transaction_ends_with_its_batch_and_the_next_statement_says_so()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        using (var transaction = db.BeginTransaction())
        {
            // Inside TRY…CATCH with XACT_ABORT ON, the error dooms the transaction; when the batch ends, the server
            // rolls it back (error 3998). A later batch cannot see it doomed: XACT_STATE() would already say 0.
            try
            {
                db.Execute($"SET XACT_ABORT ON; BEGIN TRY INSERT INTO items (name) VALUES (N'{Name("a")}') END TRY BEGIN CATCH END CATCH");
            }
            catch (SqlException)
            {
                // Error 3998 at the end of the batch.
            }

            ExpectEnded(() => db.Insert(new Item { Name = Name("b") }));
            transaction.Rollback();
        }

        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>());
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "the insert after the doom did not commit in autocommit");
    }

    [Test]
    public async Task A_deadlock_victims_scope_says_the_server_ended_its_transaction()
    {
        BabelfishDifference.DeadlockPriorityIgnored.SkipHere();
        // Two committed rows that the scope and another session lock in opposite orders; the scope is the victim.
        await Outside.ExecuteAsync($"INSERT INTO items (name, quantity) VALUES (N'{Name("x")}', 0), (N'{Name("y")}', 0)");
        try
        {
            using var db = NewShop();
            db.Execute("SET DEADLOCK_PRIORITY LOW");
            db.Execute($"UPDATE items SET quantity = 1 WHERE name = N'{Name("x")}'");

            await using var other = Outside.Open();
            await using var otherTransaction = await other.BeginTransactionAsync();
            await using (var lockY = other.CreateCommand())
            {
                lockY.Transaction = otherTransaction;
                lockY.CommandText = $"UPDATE items SET quantity = 2 WHERE name = N'{Name("y")}'";
                await lockY.ExecuteNonQueryAsync();
            }

            var scopeWaits = Task.Run(() => db.Execute($"UPDATE items SET quantity = 1 WHERE name = N'{Name("y")}'"));
            await Task.Delay(500);
            await using (var lockX = other.CreateCommand())
            {
                lockX.Transaction = otherTransaction;
                lockX.CommandText = $"UPDATE items SET quantity = 2 WHERE name = N'{Name("x")}'";
                var otherWaits = lockX.ExecuteNonQueryAsync();
                Assert.That(async () => await scopeWaits, Throws.InstanceOf<SqlException>().With.Property("Number").EqualTo(1205),
                    "the application gets the deadlock as it would outside a test");
                await otherWaits;
            }

            await otherTransaction.RollbackAsync();
            ExpectEnded(() => db.Items.Count());
            Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>());
        }
        finally
        {
            await Outside.ExecuteAsync($"DELETE FROM items WHERE name LIKE N'{Tag}%'");
        }
    }

    [Test]
    public async Task An_error_raised_while_a_result_is_read_that_ends_the_transaction_stops_the_next_statement()
    {
        await using var connection = Scope.OpenConnection();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SET XACT_ABORT ON; SELECT 10 / (3 - n) FROM (VALUES (1), (2), (3)) AS v (n)";
            await using var reader = await command.ExecuteReaderAsync();
            Assert.That(async () => { while (await reader.ReadAsync()) { } }, Throws.InstanceOf<SqlException>());
        }

        using var db = NewShop();
        ExpectEnded(() => db.Insert(new Item { Name = Name("after") }));
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>());
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero);
    }

    [Test]
    public void Commit_sent_as_dynamic_SQL_is_refused_before_it_reaches_the_server()
    {
        using var db = NewShop();
        foreach (var sql in new[] { "EXEC('COMMIT')", "EXEC sp_executesql N'COMMIT'", "EXECUTE ('IF @@TRANCOUNT > 0 COMMIT')", "EXEC('COM' + 'MIT')", "EXEC [sp_executesql] N'COMMIT'" })
            Assert.That(() => db.Execute(sql), Throws.InvalidOperationException.With.Message.Contains("would end the test's transaction").And.Message.Contains("committing or rolling it back"), sql);
        Assert.That(TranCount(), Is.EqualTo(2));
    }

    [TestCase("DECLARE @sql nvarchar(20) = N'COMMIT'; EXEC sp_executesql @sql")]
    [TestCase("DECLARE @sql nvarchar(20) = N'COMMIT'; EXEC(@sql)")]
    [TestCase("EXEC testkit_committer")]
    public async Task A_commit_the_kit_cannot_read_commits_nothing_and_fails_the_test(string sql)
    {
        using var db = NewShop();
        db.Execute("CREATE PROCEDURE testkit_committer AS BEGIN COMMIT END");
        db.Insert(new Item { Name = Name("before") });

        // SQL Server counts the COMMIT down from the scope's two transactions to one, and says so (error 266).
        Assert.That(() => db.Execute(sql), Throws.InstanceOf<SqlException>().With.Property(nameof(SqlException.Number)).EqualTo(266), sql);
        Assert.That(TranCount(), Is.EqualTo(2), "the kit opened the test's transaction again");
        db.Insert(new Item { Name = Name("after") });
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "nothing was committed");

        var end = await Assert.ThrowsAsync<TestScopeException>(async () => await Scope.DisposeAsync());
        Assert.That(end!.Message, Does.Contain("A COMMIT ran").And.Contain("In production it would have committed"));
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "nothing is left after the scope ended");
    }

    [Test]
    public async Task A_transaction_begun_where_the_kit_cannot_read_it_fails_the_test()
    {
        using var db = NewShop();
        Assert.That(() => db.Execute("DECLARE @sql nvarchar(40) = N'BEGIN TRANSACTION'; EXEC sp_executesql @sql"), Throws.InstanceOf<SqlException>().With.Property(nameof(SqlException.Number)).EqualTo(266));
        Assert.That(TranCount(), Is.EqualTo(2));

        var end = await Assert.ThrowsAsync<TestScopeException>(async () => await Scope.DisposeAsync());
        Assert.That(end!.Message, Does.Contain("A transaction began").And.Contain("counted 3 open transactions"));
        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero);
    }

    [Test]
    public void Parameters_named_Commit_and_Rollback_are_data_not_transaction_statements()
    {
        using var db = NewShop();
        Assert.That(db.Execute<int>("SELECT @Commit + @Rollback", new DataParameter("Commit", 1), new DataParameter("Rollback", 2)), Is.EqualTo(3));
        Assert.That(db.Execute<string>("SELECT N'a$b$' + N'; COMMIT'"), Is.EqualTo("a$b$; COMMIT"));
    }

    [Test]
    public void The_kits_checks_need_no_server_wide_permission()
    {
        // The bypass report comes from SqlClient's diagnostics in the test's own process: nothing asks
        // sys.dm_exec_connections, which needs VIEW SERVER STATE. A test of a login without it ends cleanly.
        var login = $"testkit_{Guid.NewGuid():N}"[..24];
        const string password = "TestKit-Limited-1!";
        var database = Scope.Database;
        using (var admin = Outside.OpenServer())
        using (var command = admin.CreateCommand())
        {
            command.CommandText = $"CREATE LOGIN [{login}] WITH PASSWORD = N'{password}'; " +
                                  $"USE [{database.Name}]; CREATE USER [{login}] FOR LOGIN [{login}]; GRANT SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo TO [{login}];";
            command.ExecuteNonQuery();
        }

        try
        {
            var given = new SqlConnectionStringBuilder(database.ServerConnectionString)
            {
                UserID = login,
                Password = password,
            };
            var limited = TestDatabase.CreateAsync(database.Provider, new TestDatabaseOptions
            {
                ConnectionString = given.ConnectionString,
                ExistingDatabase = database.Name,
                AllowExistingDatabase = true,
            }).GetAwaiter().GetResult();
            using (var scope = limited.BeginScope())
            using (var current = scope.MakeCurrent())
            {
                using var db = new ShopDb(scope.Options);
                db.Insert(new Item { Name = Name("limited") });
                Assert.That(scope.Bypasses, Is.Empty);
            }

            limited.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        finally
        {
            SqlConnection.ClearAllPools();
            using var admin = Outside.OpenServer();
            using var command = admin.CreateCommand();
            command.CommandText = $"USE [{database.Name}]; REVOKE SELECT, INSERT, UPDATE, DELETE ON SCHEMA::dbo FROM [{login}]; DROP USER IF EXISTS [{login}]; USE master; DROP LOGIN [{login}];";
            command.ExecuteNonQuery();
        }
    }

    [Test]
    public async Task A_database_whose_set_up_fails_after_it_was_created_is_dropped_at_once()
    {
        var name = $"testkit_failed_{Guid.NewGuid():N}"[..30];
        await using var admin = Outside.OpenServer();

        // An extended property holds at most 7,500 bytes: marking the new database fails after CREATE DATABASE.
        Assert.That(() => ((DatabaseProvider)SqlServerDatabaseProvider.Instance).CreateDatabaseAsync(admin, name, new string('m', 8000), CancellationToken.None),
            Throws.InstanceOf<SqlException>());

        Assert.That(await ((DatabaseProvider)SqlServerDatabaseProvider.Instance).DatabaseExistsAsync(admin, name, CancellationToken.None), Is.False,
            "no unmarked database is left, which the kit would never drop");
    }

    [Test]
    public async Task A_database_is_dropped_even_while_something_keeps_connecting_to_it()
    {
        var provider = Scope.Database.Provider;
        var database = await TestDatabase.CreateAsync(provider, TestDatabaseOptions.FromEnvironment(provider) with { ConnectionString = Scope.Database.ServerConnectionString, CheckForLeaks = false });
        using var stop = new CancellationTokenSource();
        var unpooled = new SqlConnectionStringBuilder(database.ConnectionString) { Pooling = false, ConnectTimeout = 2 }.ConnectionString;
        var connecting = Task.Run(async () =>
        {
            // As an application that keeps reconnecting: each time it gets in, it may take SINGLE_USER's one slot.
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var connection = new SqlConnection(unpooled);
                    await connection.OpenAsync(stop.Token);
                    await using var command = new SqlCommand("SELECT 1", connection);
                    await command.ExecuteScalarAsync(stop.Token);
                }
                catch (Exception exception) when (exception is SqlException or OperationCanceledException or InvalidOperationException)
                {
                }
            }
        });

        await Task.Delay(200);
        try
        {
            await database.DisposeAsync();
        }
        finally
        {
            await stop.CancelAsync();
            await connecting;
        }

        await using var admin = Outside.OpenServer();
        Assert.That(await ((DatabaseProvider)provider).DatabaseExistsAsync(admin, database.Name, CancellationToken.None), Is.False);
    }

    [Test]
    public void SqlBulkCopy_runs_natively_outside_an_application_transaction_in_a_savepoint_of_the_kits()
    {
        BabelfishDifference.BulkCopyColumnList.SkipHere();
        using var db = NewShop();
        db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific, MaxBatchSize = 100 },
            Enumerable.Range(1, 300).Select(i => new Item { Name = Name($"{i:D4}") }));

        Assert.That(db.Transaction, Is.Null, "the kit's transaction for the copy ended with it");
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(300));
        Assert.That(Scope.Trace, Does.Match("INSERT (ASYNC )?BULK items").And.Not.Contain("INSERT INTO"));
        Assert.That(Scope.Trace, Does.Contain("begin transaction → SAVE TRANSACTION"));
    }

    [Test]
    public void SqlBulkCopy_runs_natively_inside_an_application_transaction_across_batches()
    {
        BabelfishDifference.BulkCopyColumnList.SkipHere();
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific, MaxBatchSize = 100 },
            Enumerable.Range(1, 1000).Select(i => new Item { Name = Name($"{i:D4}") }));
        transaction.Commit();

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1000));
        Assert.That(Scope.Trace, Does.Match("INSERT (ASYNC )?BULK items").And.Not.Contain("INSERT INTO"));
    }

    [Test]
    public void Identity_values_are_not_reused_after_a_rollback()
    {
        using var db = NewShop();
        long first;
        using (var transaction = db.BeginTransaction())
        {
            first = db.InsertWithInt64Identity(new Item { Name = Name("first") });
            transaction.Rollback();
        }

        var second = db.InsertWithInt64Identity(new Item { Name = Name("second") });

        Assert.That(second, Is.GreaterThan(first), "SQL Server does not give identity values back on rollback: never assert on generated ids");
    }

    [Test]
    public void The_runs_database_reads_committed_snapshots_so_parallel_tests_do_not_wait_for_each_other()
    {
        Assert.That(Db.Execute<bool>("SELECT is_read_committed_snapshot_on FROM sys.databases WHERE name = DB_NAME()"), Is.True);
    }

    [Test]
    public void Raw_transaction_statements_are_refused_where_they_would_end_the_tests_transaction()
    {
        using var db = NewShop();
        foreach (var sql in new[] { "COMMIT", "ROLLBACK", "BEGIN TRAN", "IF 1 = 1 BEGIN TRANSACTION" })
            Assert.That(() => db.Execute(sql), Throws.InvalidOperationException.With.Message.Contains("would end the test's transaction"), sql);

        Assert.That(db.Execute<int>("BEGIN TRY SELECT 1 END TRY BEGIN CATCH SELECT 0 END CATCH"), Is.EqualTo(1), "BEGIN TRY is no transaction");
    }
}
