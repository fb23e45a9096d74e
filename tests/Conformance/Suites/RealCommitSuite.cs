using System.Data.Common;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Real-commit sessions begun in code: what the session commits is real while it runs, and after it every table, every
/// seed row, every identity and sequence is as the run prepared it, seen from outside. Sessions and scopes exclude
/// each other.
/// </summary>
public abstract class RealCommitSessionSuite
{
    static bool SqlServer => TestRun.Database.Provider.Name == "sqlserver";

    /// <summary>The state the reset must restore: every row, and the counters that only these tests move.</summary>
    static async Task<IReadOnlyDictionary<string, string>> StateAsync() => Comparable(await Outside.StateAsync());

    static IReadOnlyDictionary<string, string> Comparable(IReadOnlyDictionary<string, string> state) =>
        state.Where(entry => !entry.Key.StartsWith("identity ", StringComparison.Ordinal) && !entry.Key.StartsWith("sequence ", StringComparison.Ordinal)
                             || entry.Key.Contains("colours", StringComparison.Ordinal) || entry.Key.Contains("shades", StringComparison.Ordinal)
                             || entry.Key.Contains("ticket_numbers", StringComparison.Ordinal))
            .ToDictionary(entry => entry.Key, entry => entry.Value);

    static async Task ExecuteAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    static async Task<DbConnection> ConnectAsync()
    {
        var database = TestRun.Database;
        var connection = database.Provider.CreateConnection(database.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    [Test]
    public async Task Seed_rows_inserted_updated_and_deleted_and_rows_of_empty_tables_are_all_restored()
    {
        Assert.That(await StateAsync(), Is.EqualTo(Comparable(ConformanceRun.PreparedState)), "the run's database is as prepared before the session");

        await using (var session = await TestRun.Database.BeginRealCommitsAsync())
        {
            await using var db = new ShopDb(session.Options);
            await db.InsertAsync(new Colour { Name = "cyan" });
            await db.GetTable<Colour>().Where(c => c.Name == "red").Set(c => c.Name, "crimson").UpdateAsync();
            await db.GetTable<Colour>().Where(c => c.Name == "blue").DeleteAsync();
            var id = await db.InsertWithInt64IdentityAsync(new Item { Name = "real-commit item", Quantity = 1 });
            await db.InsertAsync(new ItemNote { ItemId = id, Text = "committed" });

            Assert.That(await Outside.CountItemsAsync("real-commit item"), Is.EqualTo(1), "a connection outside the session sees the commit");
            await session.DisposeAsync();
            Assert.That(session.RestoredTables.Select(t => t.Split('.')[^1].Trim('[', ']', '"')), Is.EquivalentTo(new[] { "colours", "items", "item_notes" }),
                "the tables it changed, and no other: shades, whose seed rows refer to colours, keeps its rows");
        }

        Assert.That(await StateAsync(), Is.EqualTo(Comparable(ConformanceRun.PreparedState)), "every table as prepared, after the reset");
        Assert.That(await TestRun.Database.FindLeaksAsync(), Is.Null, "the leak check finds the reset database clean");
    }

    [Test]
    public async Task A_session_that_truncates_and_empties_seed_tables_is_restored()
    {
        await using (var session = await TestRun.Database.BeginRealCommitsAsync())
        {
            await using var connection = await ConnectAsync();
            if (SqlServer)
            {
                // SQL Server truncates only tables no foreign key refers to; TRUNCATE fires no trigger.
                await ExecuteAsync(connection, "TRUNCATE TABLE shades");
                await ExecuteAsync(connection, "DELETE FROM colours WHERE name = 'blue'");
            }
            else
            {
                await ExecuteAsync(connection, "TRUNCATE colours, shades RESTART IDENTITY");
            }

            await ExecuteAsync(connection, "INSERT INTO colours (name) VALUES ('magenta')");
        }

        Assert.That(await StateAsync(), Is.EqualTo(Comparable(ConformanceRun.PreparedState)));
    }

    [Test]
    public async Task Identities_and_sequences_the_session_advanced_are_rewound()
    {
        await using (var session = await TestRun.Database.BeginRealCommitsAsync())
        {
            await using var connection = await ConnectAsync();
            await ExecuteAsync(connection, "INSERT INTO colours (name) VALUES ('amber')");
            await ExecuteAsync(connection, "DELETE FROM colours WHERE name = 'amber'");
            await ExecuteAsync(connection, SqlServer ? "SELECT NEXT VALUE FOR ticket_numbers" : "SELECT nextval('ticket_numbers')");
        }

        Assert.That(await StateAsync(), Is.EqualTo(Comparable(ConformanceRun.PreparedState)));
    }

    [Test]
    [NonParallelizable]
    public async Task A_session_while_a_class_waits_between_its_tests_restores_only_what_it_wrote_and_waits_for_none_of_the_seeds_locks()
    {
        BabelfishDifference.CheckIdentWaits.SkipHere();
        var prepared = await StateAsync();
        var classScope = await TestRun.Database.BeginScopeAsync();
        try
        {
            // A class's seed: a row that takes an identity value, and a lock on a prepared row that the session leaves alone.
            await using (var seed = new ShopDb(classScope.Options))
            {
                await seed.InsertAsync(new Colour { Name = "seeded-grey" });
                await seed.ExecuteAsync(SqlServer
                    ? "SELECT id FROM colours WITH (UPDLOCK, ROWLOCK) WHERE name = 'red'"
                    : "SELECT id FROM colours WHERE name = 'red' FOR KEY SHARE");
            }

            classScope.IdleBetweenNestedScopes();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            await using (var session = await TestRun.Database.BeginRealCommitsAsync())
            {
                await using var db = new ShopDb(session.Options);
                await db.InsertAsync(new Colour { Name = "committed-ochre" });
                await db.GetTable<Colour>().Where(c => c.Name == "green").Set(c => c.Name, "lime").UpdateAsync();
            }

            Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(8)), "the reset waited for none of the seed's locks");

            // The class's next test takes the next identity value: the reset did not rewind it under the seed's row.
            await using (var next = await classScope.BeginNested(async: true, CancellationToken.None))
            await using (var db = new ShopDb(next.Options))
            {
                await db.InsertAsync(new Colour { Name = "after-the-session" });
                Assert.That(await db.GetTable<Colour>().Where(c => c.Name.StartsWith("seeded-") || c.Name == "after-the-session").CountAsync(), Is.EqualTo(2));
            }
        }
        finally
        {
            await classScope.DisposeAsync();
        }

        Assert.That(Comparable(await Outside.StateAsync()).Where(e => !e.Key.StartsWith("identity ", StringComparison.Ordinal) && !e.Key.StartsWith("sequence ", StringComparison.Ordinal)),
            Is.EqualTo(prepared.Where(e => !e.Key.StartsWith("identity ", StringComparison.Ordinal) && !e.Key.StartsWith("sequence ", StringComparison.Ordinal))),
            "every row as prepared once the class ended");
    }

    [Test]
    public async Task Two_connections_of_a_session_see_each_others_commits()
    {
        await using var session = await TestRun.Database.BeginRealCommitsAsync();
        await using var first = await ConnectAsync();
        await using var second = await ConnectAsync();

        await ExecuteAsync(first, "INSERT INTO colours (name) VALUES ('teal')");
        await using (var read = second.CreateCommand())
        {
            read.CommandText = "SELECT COUNT(*) FROM colours WHERE name = 'teal'";
            Assert.That(Convert.ToInt64(await read.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(1));
        }
    }

    [Test]
    public async Task A_session_waits_for_open_scopes_and_scopes_begun_meanwhile_wait_for_it()
    {
        Task<RealCommitSession> sessionBegins;
        var scope = await Task.Run(() => TestRun.Database.BeginScopeAsync());
        try
        {
            sessionBegins = Task.Run(() => TestRun.Database.BeginRealCommitsAsync());
            await Task.Delay(300);
            Assert.That(sessionBegins.IsCompleted, Is.False, "the session waits while a scope is open");
        }
        finally
        {
            await scope.DisposeAsync();
        }

        var session = await sessionBegins.WaitAsync(TimeSpan.FromSeconds(60));
        Task<TestScope> scopeBegins;
        try
        {
            scopeBegins = Task.Run(() => TestRun.Database.BeginScopeAsync());
            await Task.Delay(300);
            Assert.That(scopeBegins.IsCompleted, Is.False, "a scope waits while the session runs");
        }
        finally
        {
            await session.DisposeAsync();
        }

        await (await scopeBegins.WaitAsync(TimeSpan.FromSeconds(60))).DisposeAsync();
    }

    [Test]
    public async Task A_session_begun_inside_a_scope_and_a_scope_begun_inside_a_session_are_refused_at_once()
    {
        await using (var scope = await TestRun.Database.BeginScopeAsync())
        using (scope.MakeCurrent())
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => TestRun.Database.BeginRealCommitsAsync());
            Assert.That(error!.Message, Does.Contain("cannot also commit for real"));
        }

        // Through the public API alone: the flow that began the session knows it, and waits for nothing.
        await using (var session = await TestRun.Database.BeginRealCommitsAsync())
        {
            Assert.That(RealCommitSession.Current, Is.SameAs(session));
            Assert.That(async () => await TestRun.Database.BeginScopeAsync().WaitAsync(TimeSpan.FromSeconds(10)),
                Throws.InvalidOperationException.With.Message.Contains("has the run's database to itself"), "a scope is refused at once");
            Assert.That(async () => await TestRun.Database.BeginRealCommitsAsync().WaitAsync(TimeSpan.FromSeconds(10)),
                Throws.InvalidOperationException.With.Message.Contains("one session at a time"), "a second session is refused at once");
            Assert.That(async () => await Task.Run(() => TestRun.Database.BeginScopeAsync()).WaitAsync(TimeSpan.FromSeconds(10)),
                Throws.InvalidOperationException, "code the test starts is in its flow too");
        }

        Assert.That(RealCommitSession.Current, Is.Null, "the session ended");
        await using var after = await TestRun.Database.BeginScopeAsync().WaitAsync(TimeSpan.FromSeconds(60));
    }
}

/// <summary>
/// <see cref="RealCommitsAttribute"/> tests of a <see cref="DatabaseTest"/> class: code that commits for real, opens its
/// own connections, and runs the application; the run's leak check and final look prove each was reset.
/// </summary>
public abstract class RealCommitsAttributeSuite : DatabaseTest
{
    [Test]
    [RealCommits]
    public async Task Code_that_opens_its_own_connection_with_the_runs_connection_string_commits_and_passes()
    {
        var database = TestRun.Database;
        await using (var connection = database.Provider.CreateConnection(database.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO colours (name) VALUES ('violet')";
            await command.ExecuteNonQueryAsync();
        }

        Assert.That(await Db.GetTable<Colour>().CountAsync(c => c.Name == "violet"), Is.EqualTo(1));
        Assert.That(RealCommits.Database, Is.SameAs(database));
    }

    [Test]
    [RealCommits]
    public async Task A_context_the_code_builds_itself_commits_for_real()
    {
        await using (var db = new ShopDb(new DataOptions().UseConnectionString(TestRun.Database.Provider.Name == "sqlserver" ? ProviderName.SqlServer : ProviderName.PostgreSQL, TestRun.Database.ConnectionString)))
        {
            await db.GetTable<Colour>().Where(c => c.Name == "green").Set(c => c.Name, "olive").UpdateAsync();
        }

        Assert.That(await Outside.CountAsync("colours", "olive"), Is.EqualTo(1), "committed: seen from outside");
    }

    [Test]
    [RealCommits]
    public void The_scope_of_a_real_commit_test_says_why_there_is_none()
    {
        var error = Assert.Throws<InvalidOperationException>(() => _ = Scope);
        Assert.That(error!.Message, Does.Contain("commits for real ([RealCommits])").And.Contain("TestRun.Database.ConnectionString"));
    }

    [Test]
    public async Task A_test_beside_them_runs_in_a_scope_and_sees_the_seed_as_prepared()
    {
        Assert.That(await Db.GetTable<Colour>().OrderBy(c => c.Id).Select(c => c.Name).ToArrayAsync(), Is.EqualTo(new[] { "red", "green", "blue" }));
    }
}

/// <summary>
/// One inherited test, in a class marked <see cref="RealCommitsAttribute"/> and in one that is not: the mark on each class
/// decides for that class's tests (the kit keeps the answer per test method, and must not share it between the two).
/// </summary>
public abstract class RealCommitsOnClassSuite : DatabaseTest
{
    /// <summary>Whether the class deriving from this suite is marked <see cref="RealCommitsAttribute"/>.</summary>
    protected abstract bool ClassIsMarked { get; }

    [Test]
    public void The_mark_on_its_class_decides_whether_the_test_commits_for_real()
    {
        if (ClassIsMarked)
        {
            Assert.That(RealCommitSession.Current, Is.Not.Null, "a class marked [RealCommits] commits for real in every test");
            Assert.That(TestScope.Current, Is.Null);
        }
        else
        {
            Assert.That(TestScope.Current, Is.Not.Null, "an unmarked class runs its tests in scopes");
            Assert.That(RealCommitSession.Current, Is.Null);
        }
    }
}
