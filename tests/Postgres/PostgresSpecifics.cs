using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.Internal;
using LinqToDB;
using LinqToDB.Data;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>What only PostgreSQL does: the savepoint dialect, and a transaction that one failed statement aborts.</summary>
public sealed class PostgresSpecifics : ConformanceTest
{
    [Test]
    public void Application_transactions_become_savepoint_release_and_rollback_to()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        using (var transaction = outer.BeginTransaction())
        {
            using (var nested = inner.BeginTransaction())
            {
                inner.Insert(new Item { Name = Name("rolled-back") });
                nested.Rollback();
            }

            transaction.Commit();
        }

        Assert.That(Scope.Trace, Does.Match(@"SAVEPOINT (testkit_\d+)[\s\S]*SAVEPOINT (testkit_\d+)[\s\S]*ROLLBACK TO SAVEPOINT \2[\s\S]*RELEASE SAVEPOINT \1"));
    }

    [Test]
    public void A_failed_statement_outside_any_transaction_aborts_the_test_and_the_next_statement_says_which_one()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.UniqueViolation));

        var error = Assert.Throws<TestScopeException>(() => db.Items.Count());
        Assert.That(error!.Message, Does.Contain("aborted the test's transaction")
            .And.Contain("INSERT INTO")
            .And.Contain("ux_items_name")
            .And.Contain("inside a transaction"));
        Assert.That(error.InnerException, Is.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.InFailedSqlTransaction));
    }

    [Test]
    public void Inside_an_application_transaction_the_message_says_which_transaction_to_roll_back()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.Insert(new Item { Name = Name("a") });
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>());

        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("Roll back the transaction"));
        transaction.Rollback();
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "the rollback to the savepoint revived the scope");
    }

    [Test]
    public void Committing_a_failed_application_transaction_rolls_it_back_as_PostgreSQL_does()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("before") });

        using (var transaction = db.BeginTransaction())
        {
            db.Insert(new Item { Name = Name("in-failed-transaction") });
            Assert.That(() => db.Insert(new Item { Name = Name("before") }), Throws.InstanceOf<PostgresException>());
            transaction.Commit();
        }

        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "before" }), "PostgreSQL's COMMIT of a failed transaction is a ROLLBACK");
        db.Insert(new Item { Name = Name("after") });
        Assert.That(Scope.Trace, Does.Contain("commit after a failed statement → ROLLBACK TO SAVEPOINT"));
    }

    [Test]
    public void With_statement_savepoints_a_failed_statement_rolls_back_alone_and_the_test_goes_on()
    {
        Scope.StatementSavepoints = true;
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.UniqueViolation));
        Assert.That(() => db.Execute<int>("SELECT 1 / 0"), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.DivisionByZero));
        db.Insert(new Item { Name = Name("b") });

        using (var transaction = db.BeginTransaction())
        {
            Assert.That(() => db.Insert(new Item { Name = Name("b") }), Throws.InstanceOf<PostgresException>());
            db.Insert(new Item { Name = Name("c") });
            transaction.Commit();
        }

        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(Scope.Trace, Does.Contain("the failed statement was rolled back alone"));
    }

    [Test]
    public void With_statement_savepoints_a_reader_that_fails_after_it_began_rolls_back_alone()
    {
        Scope.StatementSavepoints = true;
        using var connection = Scope.OpenConnection();
        using (var command = connection.CreateCommand())
        {
            // The first row comes back; the division by zero of the third fails while reading.
            command.CommandText = "SELECT 10 / (3 - i) FROM generate_series(1, 3) AS i";
            using var reader = command.ExecuteReader();
            Assert.That(() => { while (reader.Read()) { } }, Throws.InstanceOf<PostgresException>());
        }

        using var db = NewShop();
        db.Insert(new Item { Name = Name("after") });
        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "after" }));
    }

    [Test]
    public void Statement_savepoints_follow_the_environment_variable()
    {
        var options = TestDatabaseOptions.FromEnvironment(PostgreSql.PostgreSqlDatabaseProvider.Instance, name => name == "TESTKIT_STATEMENT_SAVEPOINTS" ? "true" : null);

        Assert.That(options.StatementSavepoints, Is.True);
        Assert.That(Scope.StatementSavepoints, Is.EqualTo(Scope.Database.StatementSavepoints));
    }

    [Test]
    public void With_statement_savepoints_a_failed_bulk_copy_rolls_back_alone_and_the_statement_before_it_stays()
    {
        Scope.StatementSavepoints = true;
        using var db = NewShop();
        db.Insert(new Item { Name = Name("before") });

        Assert.That(() => db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, new[] { new Item { Name = Name("before") } }),
            Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.UniqueViolation));
        db.Insert(new Item { Name = Name("after") });

        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "after", "before" }), "only the failed copy was undone");
    }

    [Test]
    public void Without_statement_savepoints_a_failed_bulk_copy_aborts_the_transaction_and_the_next_statement_names_it()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("before") });

        Assert.That(() => db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific }, new[] { new Item { Name = Name("before") } }),
            Throws.InstanceOf<PostgresException>());

        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("a provider-specific bulk copy"));
    }

    [Test]
    public void Turning_statement_savepoints_off_releases_the_last_one_and_a_later_failure_aborts_as_documented()
    {
        Scope.StatementSavepoints = true;
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        Scope.StatementSavepoints = false;

        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>());

        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("aborted the test's transaction"),
            "the failure aborted the transaction; it was not silently rolled back to the last statement's savepoint");
        Assert.That(Scope.Trace, Does.Not.Contain("rolled back alone"));
    }

    [Test]
    public void A_command_timeout_is_the_drivers_own_error_and_the_application_can_roll_back_and_go_on()
    {
        using var db = NewShop();
        db.CommandTimeout = 1;
        using (var transaction = db.BeginTransaction())
        {
            db.Insert(new Item { Name = Name("inside") });
            Assert.That(() => db.Execute("SELECT pg_sleep(5)"), Throws.InstanceOf<NpgsqlException>().With.InnerException.InstanceOf<TimeoutException>(),
                "the application gets the driver's timeout, as it would outside a test");
            transaction.Rollback();
        }

        db.Insert(new Item { Name = Name("after") });
        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "after" }), "the scope lives on: a timeout is not a lost connection");
        Assert.That(Scope.Trace, Does.Not.Contain("connection to the server is lost"));
    }

    const string DeferredSchema =
        "CREATE TEMPORARY TABLE parents (id int PRIMARY KEY) ON COMMIT DROP; " +
        "CREATE TEMPORARY TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP";

    [Test]
    public void A_deferred_constraint_fails_the_applications_commit_as_it_would_in_production_and_rolls_its_transaction_back()
    {
        using var db = NewShop();
        db.Execute(DeferredSchema);

        using (var transaction = db.BeginTransaction())
        {
            db.Execute("INSERT INTO children (id, parent_id) VALUES (1, 42)");
            Assert.That(() => transaction.Commit(), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.ForeignKeyViolation));
        }

        Assert.That(db.Execute<int>("SELECT count(*) FROM children"), Is.Zero, "the failed commit rolled the transaction back, as PostgreSQL's does");
    }

    [Test]
    public void After_a_commit_that_checked_them_deferred_constraints_stay_deferred()
    {
        using var db = NewShop();
        db.Execute(DeferredSchema);
        using (var transaction = db.BeginTransaction())
        {
            db.Execute("INSERT INTO parents (id) VALUES (1)");
            db.Execute("INSERT INTO children (id, parent_id) VALUES (1, 1)");
            transaction.Commit();
        }

        using (var transaction = db.BeginTransaction())
        {
            // Violated for a moment, mended before the commit: fine while the constraint is deferred.
            db.Execute("INSERT INTO children (id, parent_id) VALUES (2, 2)");
            db.Execute("INSERT INTO parents (id) VALUES (2)");
            Assert.That(() => transaction.Commit(), Throws.Nothing);
        }

        Assert.That(db.Execute<int>("SELECT count(*) FROM children"), Is.EqualTo(2));
    }

    [Test]
    public async Task A_session_level_advisory_lock_is_released_when_the_scope_ends()
    {
        using (var db = NewShop())
            db.Execute("SELECT pg_advisory_lock(74656)");

        await Scope.DisposeAsync();

        await using var outside = Outside.Open();
        await using var command = outside.CreateCommand();
        command.CommandText = "SELECT pg_try_advisory_lock(74656)";
        Assert.That(await command.ExecuteScalarAsync(), Is.True, "another session takes the lock at once: the scope's pooled connection does not hold it");
        command.CommandText = "SELECT pg_advisory_unlock(74656)";
        await command.ExecuteScalarAsync();
    }

    [Test]
    public async Task An_advisory_lock_of_the_previous_test_is_free_when_the_next_test_begins()
    {
        // The integrations end a test without waiting for its rollback's answer; the next test's begin waits for it.
        var database = Scope.Database;
        await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            await using var outside = Outside.Open();
            await using var command = outside.CreateCommand();
            for (var round = 0; round < 30; round++)
            {
                var previous = ScopedTest.Begin(database);
                using (var db = new ShopDb(previous.Options))
                    db.Execute("SELECT pg_advisory_lock(74657)");
                Assert.That(ScopedTest.End(previous), Is.Null);

                var next = ScopedTest.Begin(database);
                command.CommandText = "SELECT pg_try_advisory_lock(74657)";
                Assert.That(await command.ExecuteScalarAsync(), Is.True, $"round {round}: the lock of the previous test was still held when the next began");
                command.CommandText = "SELECT pg_advisory_unlock(74657)";
                await command.ExecuteScalarAsync();
                Assert.That(ScopedTest.End(next), Is.Null);
            }
        });
    }

    [Test]
    public async Task Tests_one_after_another_reuse_the_connection_the_previous_test_warmed([Values] bool endedAsTheIntegrationsEndThem)
    {
        // A database of its own: no other test's scope holds a connection of its pool.
        await using var own = await OwnDatabase.CreateAsync("CREATE TABLE notes (id int NOT NULL PRIMARY KEY)");
        var attempts = new List<string>();
        for (var attempt = 0; attempt < SessionAttempts; attempt++)
        {
            var sessions = await Task.Run(async () =>
            {
                TestScope.SetCurrent(null);
                var seen = new List<int>();
                for (var test = 0; test < 4; test++)
                {
                    var scope = await BeginAsync(own.Database, endedAsTheIntegrationsEndThem);
                    using (var db = new DataConnection(scope.Options))
                        seen.Add(db.Execute<int>("SELECT pg_backend_pid()"));
                    await EndAsync(scope, endedAsTheIntegrationsEndThem);
                }

                return seen;
            });

            if (sessions.Distinct().Count() == 1)
                return;
            attempts.Add(string.Join(", ", sessions));
        }

        Assert.Fail($"in no attempt did every test run on the server session the one before it used (sessions: {string.Join("; ", attempts)}); " +
                    "a second connection in the pool would have them take turns");
    }

    /// <summary>
    /// How often a test that needs the next scope on the previous one's server session tries: another fixture's
    /// <c>NpgsqlConnection.ClearAllPools()</c> (a throwaway server's, a template's test) may close the session in between.
    /// </summary>
    const int SessionAttempts = 3;

    [Test]
    public async Task Session_settings_listens_and_prepared_statements_of_one_scope_are_not_in_the_next()
    {
        using (var db = NewShop())
        {
            db.Execute("SET search_path = pg_catalog, public");
            db.Execute("LISTEN testkit_channel");
            db.Execute("PREPARE testkit_query AS SELECT 1");
        }

        // A LISTEN takes effect on commit, which a scope never does: the test fails, saying so.
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("ran LISTEN outside a transaction"));

        for (var i = 0; i < 3; i++)
        {
            // The next scopes, on the pool's connections: each starts as a fresh session would.
            await using var next = await Scope.Database.BeginScopeAsync();
            using var db = new ShopDb(next.Options);
            Assert.That(db.Execute<string>("SHOW search_path"), Does.Not.StartWith("pg_catalog"));
            Assert.That(db.Execute<long>("SELECT count(*) FROM pg_listening_channels()"), Is.Zero);
            Assert.That(() => db.Execute("PREPARE testkit_query AS SELECT 1"), Throws.Nothing);
        }
    }

    [Test]
    public async Task What_a_session_keeps_beyond_the_rollback_is_gone_when_the_next_test_begins_on_it([Values] bool endedAsTheIntegrationsEndThem)
    {
        // A database of its own: no other test's scope holds a connection of its pool, so the next test gets the same session.
        await using var own = await OwnDatabase.CreateAsync("CREATE SEQUENCE numbers");
        var checkedOnTheSameSession = await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            for (var attempt = 0; attempt < SessionAttempts; attempt++)
            {
                var previous = await BeginAsync(own.Database, endedAsTheIntegrationsEndThem);
                int session;
                using (var db = new DataConnection(previous.Options))
                {
                    session = db.Execute<int>("SELECT pg_backend_pid()");
                    db.Execute("SELECT nextval('numbers')");
                    db.Execute("SELECT pg_advisory_lock(74658)");
                    db.Execute("PREPARE testkit_kept AS SELECT 1");
                }

                await EndAsync(previous, endedAsTheIntegrationsEndThem);

                var next = await BeginAsync(own.Database, endedAsTheIntegrationsEndThem);
                next.StatementSavepoints = true;
                bool sameSession;
                using (var db = new DataConnection(next.Options))
                {
                    // Only on the same session does the check say anything (see SessionAttempts).
                    sameSession = db.Execute<int>("SELECT pg_backend_pid()") == session;
                    if (sameSession)
                    {
                        Assert.That(db.Execute<long>("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), Is.Zero, "the advisory lock");
                        Assert.That(db.Execute<long>("SELECT count(*) FROM pg_prepared_statements"), Is.Zero, "the prepared statement");
                        Assert.That(() => db.Execute<long>("SELECT currval('numbers')"), Throws.InstanceOf<PostgresException>()
                            .With.Property("SqlState").EqualTo(PostgresErrorCodes.ObjectNotInPrerequisiteState), "the sequence's currval");
                    }
                }

                await EndAsync(next, endedAsTheIntegrationsEndThem);
                if (sameSession)
                    return true;
            }

            return false;
        });

        Assert.That(checkedOnTheSameSession, Is.True, "the next test never ran on the session the previous one used");
    }

    [Test]
    public async Task A_statement_the_driver_prepared_in_one_test_is_prepared_anew_in_the_next(
        [Values] bool endedAsTheIntegrationsEndThem, [Values] bool onTheDriversConnection)
    {
        await using var own = await OwnDatabase.CreateAsync("CREATE TABLE notes (id int NOT NULL PRIMARY KEY)");
        await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            for (var test = 0; test < 3; test++)
            {
                var scope = await BeginAsync(own.Database, endedAsTheIntegrationsEndThem);
                await using (var connection = scope.OpenConnection())
                {
                    await using var command = onTheDriversConnection ? TestScope.GetDriverConnection(connection).CreateCommand() : connection.CreateCommand();
                    command.CommandText = "SELECT count(*) FROM notes";
                    await command.PrepareAsync();
                    Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(0L), $"test {test}");
                }

                await EndAsync(scope, endedAsTheIntegrationsEndThem);
            }
        });
    }

    [Test]
    public async Task Statements_Npgsql_prepares_by_itself_run_in_every_test([Values] bool endedAsTheIntegrationsEndThem)
    {
        var server = new NpgsqlConnectionStringBuilder(Scope.Database.ServerConnectionString) { MaxAutoPrepare = 10, AutoPrepareMinUsages = 2 }.ConnectionString;
        await using var own = await OwnDatabase.CreateAsync("CREATE TABLE notes (id int NOT NULL PRIMARY KEY)", server);
        await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            for (var test = 0; test < 3; test++)
            {
                var scope = await BeginAsync(own.Database, endedAsTheIntegrationsEndThem);
                using (var db = new DataConnection(scope.Options))
                {
                    for (var run = 0; run < 4; run++)
                        Assert.That(db.Execute<long>("SELECT count(*) FROM notes"), Is.Zero, $"test {test}, run {run}");
                }

                await EndAsync(scope, endedAsTheIntegrationsEndThem);
            }
        });
    }

    /// <summary>A test's begin, as the test framework integrations make it or as a test's own code does.</summary>
    static async Task<TestScope> BeginAsync(TestDatabase database, bool asTheIntegrations) =>
        asTheIntegrations ? ScopedTest.Begin(database) : await database.BeginScopeAsync();

    static async Task EndAsync(TestScope scope, bool asTheIntegrations)
    {
        if (asTheIntegrations)
            Assert.That(ScopedTest.End(scope), Is.Null);
        else
            await scope.DisposeAsync();
    }

    [Test]
    public void A_statement_that_fails_while_its_rows_are_read_is_named_as_such_by_the_next_statement()
    {
        using var connection = Scope.OpenConnection();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT 10 / (3 - i) FROM generate_series(1, 3) AS i";
            using var reader = command.ExecuteReader();
            Assert.That(() => { while (reader.Read()) { } }, Throws.InstanceOf<PostgresException>());
        }

        using var db = NewShop();
        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>()
            .With.Message.Contains("failed after it had returned its result").And.Message.Not.Contains("driver's own connection"));
    }
}
