using System.Diagnostics;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.Internal;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Faults from outside: the server kills the test's session mid-test, or the test process dies with SIGKILL mid-scope.
/// Either way nothing the test wrote is committed, the scope that broke says so clearly, and the next scope works.
/// </summary>
[CancelAfter(300_000)]
public abstract class FaultSuite : ConformanceTest
{
    /// <summary>SQL that returns the server's id of the current session.</summary>
    protected abstract string SessionIdQuery { get; }

    /// <summary>SQL that makes the server end session <paramref name="id"/>.</summary>
    protected abstract string KillSession(int id);

    /// <summary>The name of the sealed fixture derived from <see cref="KilledMidScopeSuite"/> in the test project.</summary>
    protected abstract string KilledMidScopeFixture { get; }

    [Test]
    public async Task A_session_the_server_kills_mid_test_gives_a_clear_error_and_the_next_scope_works()
    {
        using var db = NewShop();
        using (var transaction = db.BeginTransaction())
        {
            db.Insert(new Item { Name = Name("committed-by-the-application") });
            transaction.Commit();
        }

        await Outside.ExecuteAsync(KillSession(db.Execute<int>(SessionIdQuery)));

        var error = Assert.Throws<TestScopeException>(() => db.Insert(new Item { Name = Name("after") }));
        Assert.That(error!.Message, Does.Contain("was lost").And.Contain("Nothing the test wrote was committed"));
        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("was lost"), "every later statement says the same");

        await using (var next = await Scope.Database.BeginScopeAsync())
        using (var other = new ShopDb(next.Options))
        {
            other.Insert(new Item { Name = Name("next-scope") });
            Assert.That(other.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1), "the next scope works, and sees nothing of the killed one");
        }

        await EndScopeAndAssertNothingLeftAsync();
    }

    /// <summary>
    /// Between two tests the integrations leave the first test's rollback on its way while the framework moves on
    /// (<c>ScopedTest.End</c>). The next test, begun at once, must find a fresh transaction: on the same pooled
    /// connection when the rollback was answered, on a new one when the first test's session broke.
    /// </summary>
    [Test]
    public async Task The_next_test_never_sees_the_previous_tests_rows([Values] bool previousSessionKilled)
    {
        var reused = 0;
        var database = Scope.Database;
        await Task.Run(async () =>
        {
            TestScope.SetCurrent(null);
            for (var round = 0; round < 20; round++)
            {
                var previous = ScopedTest.Begin(database);
                int previousSession;
                using (var db = new ShopDb(previous.Options))
                {
                    db.Insert(new Item { Name = Name($"previous-{round}") });
                    previousSession = db.Execute<int>(SessionIdQuery);
                    Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1), "the previous test sees its own row");
                }

                if (previousSessionKilled)
                    await Outside.ExecuteAsync(KillSession(previousSession));
                Assert.That(ScopedTest.End(previous), Is.Null, "the previous test ends without a problem: its session's end rolled it back");

                var next = ScopedTest.Begin(database);
                using (var db = new ShopDb(next.Options))
                {
                    var nextSession = db.Execute<int>(SessionIdQuery);
                    if (nextSession == previousSession)
                        reused++;
                    Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, $"round {round}: the next test sees a row of the previous one");
                    db.Insert(new Item { Name = Name($"next-{round}") });
                }

                Assert.That(ScopedTest.End(next), Is.Null);
            }
        });

        Assert.That(await Outside.CountItemsAsync(Tag), Is.Zero, "nothing of either test persisted");
        if (previousSessionKilled)
            return;
        if (reused == 0)
            BabelfishDifference.RollbackNotReported.SkipHere();
        Assert.That(reused, Is.GreaterThan(0), "the next test got the previous test's pooled connection at least once: the case this test is about");
    }

    [Test]
    [NonParallelizable]   // the killed run's database is any later run's to drop; it must still be there to be looked at
    public async Task A_test_process_killed_mid_scope_leaves_nothing_committed()
    {
        var ready = Path.Combine(Path.GetTempPath(), $"testkit-killed-{Tag}.ready");
        using var child = ChildTestRun.Start(GetType().Assembly, KilledMidScopeFixture, ready, new Dictionary<string, string>
        {
            [KilledMidScopeSuite.ReadyFileVariable] = ready,
            [KilledMidScopeSuite.TagVariable] = Tag,
            // The child works on this run's server, even when the kit started it for this run.
            [TestRun.Database.Provider.ConnectionVariable] = TestRun.Database.ServerConnectionString,
        });
        var lines = await child.WaitUntilReadyAsync();
        var childDatabase = lines[0];
        await child.KillAsync(lines);

        var provider = TestRun.Database.Provider;
        var given = TestRun.Database.ServerConnectionString;
        await using var check = provider.CreateConnection(provider.ForDatabase(given, childDatabase, "linq2db-testkit-checks"));
        await check.OpenAsync();
        await using (var count = check.CreateCommand())
        {
            count.CommandText = $"SELECT COUNT(*) FROM items WHERE name LIKE '{Tag}%'";
            Assert.That(Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture), Is.Zero,
                "the killed process had written and 'committed' rows; none of them is in its database");
        }

        await check.CloseAsync();
        provider.ClearPool(provider.ForDatabase(given, childDatabase, "linq2db-testkit-checks"));
        await using var admin = Outside.OpenServer();
        await provider.DropDatabaseAsync(admin, childDatabase, CancellationToken.None);
    }
}

/// <summary>
/// The child of <see cref="FaultSuite.A_test_process_killed_mid_scope_leaves_nothing_committed"/>: writes through its
/// scope, commits an application transaction, says it is ready, and waits to be killed. Mark the derived fixture
/// <c>[Explicit]</c>: a normal run must not run it.
/// </summary>
public abstract class KilledMidScopeSuite : ConformanceTest
{
    public const string ReadyFileVariable = "TESTKIT_KILLED_READY_FILE";
    public const string TagVariable = "TESTKIT_KILLED_TAG";

    [Test]
    public async Task Writes_then_waits_to_be_killed()
    {
        var tag = Environment.GetEnvironmentVariable(TagVariable) ?? Tag;
        using var db = NewShop();
        using (var transaction = db.BeginTransaction())
        {
            db.Insert(new Item { Name = $"{tag}-committed" });
            transaction.Commit();
        }

        await using (var connection = Scope.OpenConnection())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"INSERT INTO items (name) VALUES ('{tag}-raw')";
            await command.ExecuteNonQueryAsync();
        }

        Assert.That(db.Items.Count(i => i.Name.StartsWith(tag)), Is.EqualTo(2));
        // The run's database, and the process that writes in it: the parent kills this one first.
        await File.WriteAllTextAsync(Environment.GetEnvironmentVariable(ReadyFileVariable)!, $"{TestRun.Database.Name}\n{Environment.ProcessId}");
        await Task.Delay(TimeSpan.FromMinutes(2));
    }
}
