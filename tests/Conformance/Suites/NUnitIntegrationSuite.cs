using System.Diagnostics;
using System.Xml.Linq;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Async;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Tests that fail on purpose: run only by <see cref="NUnitIntegrationSuite"/>, in a child test run, which checks what
/// NUnit reported of them and that they left nothing behind. Mark the derived fixture <c>[Explicit]</c>: NUnit does not
/// inherit it, and a normal run must not run these.
/// </summary>
public abstract class DeliberateFailureSuite : ConformanceTest
{
    public const string TagVariable = "TESTKIT_DELIBERATE_FAILURE_TAG";

    static string RunTag => Environment.GetEnvironmentVariable(TagVariable) ?? "deliberate";

    [Test]
    public void Fails_after_writing()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = $"{RunTag}-failed-assertion" });
        Assert.Fail("this test fails on purpose");
    }

    [Test]
    public async Task Writes_through_a_connection_of_its_own()
    {
        // As an application does that builds its own connection from its configuration instead of using the scope.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"INSERT INTO items (name, quantity) VALUES ('{RunTag}-bypass', 1)";
        await command.ExecuteNonQueryAsync();
        command.CommandText = $"DELETE FROM items WHERE name = '{RunTag}-bypass'";
        await command.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task Writes_through_a_connection_string_the_application_made_itself()
    {
        // As an application does that rebuilds the connection string with its own application name and pool settings.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.Provider.ForDatabase(database.ConnectionString, null, "orders-service", kitConnection: false) + ";Pooling=false");
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"INSERT INTO items (name, quantity) VALUES ('{RunTag}-own-string', 1)";
        await command.ExecuteNonQueryAsync();
        command.CommandText = $"DELETE FROM items WHERE name = '{RunTag}-own-string'";
        await command.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task Runs_a_statement_no_transaction_may_hold_on_a_connection_of_its_own()
    {
        // As a migration or maintenance test does; the kit says what works instead of advising the scope.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = database.Provider.Name == "postgres" ? "VACUUM items" : "ALTER DATABASE CURRENT SET ANSI_NULLS ON";
        try
        {
            await command.ExecuteNonQueryAsync();
        }
        catch (System.Data.Common.DbException)
        {
            // Babelfish has no ALTER DATABASE; the statement is reported all the same.
        }
    }

    [Test]
    public async Task Reads_through_a_connection_of_its_own()
    {
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"SELECT COUNT(*) FROM items WHERE name = '{RunTag}-read'";
        await command.ExecuteScalarAsync();
    }

    [Test]
    public async Task Waits_on_a_connection_of_its_own_for_a_row_its_scope_holds()
    {
        using (var db = NewShop())
            db.Insert(new Item { Name = $"{RunTag}-held" });

        // The same unique name from outside the scope waits for the scope's insert, which waits for the test: the
        // connection string's lock wait limit ends the wait, and the application handles the error as it would a timeout.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"INSERT INTO items (name, quantity) VALUES ('{RunTag}-held', 1)";
        // SQL Server has no lock wait limit a connection string can set: the application's command timeout ends the wait.
        if (database.Provider.Name == "sqlserver")
            command.CommandTimeout = 5;
        Assert.That(() => command.ExecuteNonQueryAsync(), Throws.InstanceOf<System.Data.Common.DbException>());
    }

    [Test]
    public async Task Fails_waiting_on_a_connection_of_its_own_for_a_row_its_scope_holds()
    {
        using (var db = NewShop())
            db.Insert(new Item { Name = $"{RunTag}-held-uncaught" });

        // As application code does that lets the driver's timeout escape: the kit adds to the test's failure what waited, and on whom.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        await using var own = database.Provider.CreateConnection(database.ConnectionString);
        await own.OpenAsync();
        await using var command = own.CreateCommand();
        command.CommandText = $"INSERT INTO items (name, quantity) VALUES ('{RunTag}-held-uncaught', 1)";
        if (database.Provider.Name == "sqlserver")
            command.CommandTimeout = 5;
        await command.ExecuteNonQueryAsync();
    }

    [Test]
    public void Throws_inside_a_committed_application_transaction()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.Insert(new Item { Name = $"{RunTag}-exception" });
        transaction.Commit();
        throw new InvalidOperationException("this test throws on purpose");
    }
}

/// <summary>
/// A <see cref="Linq2DbTestKit.NUnit.RealCommitsAttribute"/> test of a class that is not a <see cref="Linq2DbTestKit.NUnit.DatabaseTest"/>: nothing
/// would begin its session, so it fails. Run only by <see cref="NUnitIntegrationSuite"/>, in the same child run as <see cref="DeliberateFailureSuite"/>.
/// </summary>
public abstract class DeliberateFailureOutsideDatabaseTestSuite
{
    [Test]
    [Linq2DbTestKit.NUnit.RealCommits]
    public void Is_marked_real_commits_in_a_class_that_is_no_database_test()
    {
    }
}

/// <summary>
/// A class whose seed throws: each of its tests fails saying so, the first one too. Run only by
/// <see cref="NUnitIntegrationSuite"/>, in the same child run as <see cref="DeliberateFailureSuite"/>.
/// </summary>
public abstract class DeliberateFailureInASeedSuite : SeededDatabaseTest
{
    protected override Task SeedAsync() => throw new InvalidOperationException("the seed fails on purpose");

    [Test]
    public void First_test_of_a_class_whose_seed_fails()
    {
    }

    [Test]
    public void Second_test_of_a_class_whose_seed_fails()
    {
    }
}

/// <summary>
/// Classes whose seeds insert the same unique key, each asking NUnit to run its tests in parallel, with a plain test
/// and parameterized ones: each instance seeds once, and the run ends however NUnit schedules them. Run only by
/// <see cref="NUnitIntegrationSuite"/>, in child test runs with 2 and with 8 workers.
/// </summary>
[Parallelizable(ParallelScope.All)]
public abstract class ContendedSeedSuite(int instance) : SeededDatabaseTest
{
    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> Seeds = new(StringComparer.Ordinal);

    /// <summary>Set by the parent run: fewer classes on a slower server, so that the child's time stays bounded on a busy machine.</summary>
    public const string InstancesVariable = "TESTKIT_CONTENDED_INSTANCES";

    public static IEnumerable<int> Instances => Enumerable.Range(1, int.TryParse(Environment.GetEnvironmentVariable(InstancesVariable), out var count) ? count : 20);

    string Key => $"{GetType().Name}/{instance}";

    protected override async Task SeedAsync()
    {
        Seeds.AddOrUpdate(Key, 1, (_, count) => count + 1);
        await using var db = new ShopDb(Scope.Options);
        await db.InsertAsync(new Item { Name = $"{Environment.GetEnvironmentVariable(DeliberateFailureSuite.TagVariable)}-contended", Quantity = instance });
    }

    async Task SeesItsSeedAsync()
    {
        Assert.That(Seeds[Key], Is.EqualTo(1), "the class seeded once, whatever shapes its tests have");
        await using var db = new ShopDb(Scope.Options);
        Assert.That(await db.Items.Where(i => i.Name.EndsWith("-contended")).Select(i => i.Quantity).SingleAsync(), Is.EqualTo(instance));
    }

    [Test]
    public Task Sees_its_seed() => SeesItsSeedAsync();

    [TestCase(1)]
    [TestCase(2)]
    public Task Sees_its_seed_in_a_parameterized_test(int _) => SeesItsSeedAsync();

    [Test]
    public Task Sees_its_seed_with_values([Values(1, 2)] int _) => SeesItsSeedAsync();
}

/// <summary>
/// A test that commits a row on a connection it closes before it ends, from a flow that is not the test's: nothing
/// attributes it to the test, and only the run's leak check can see it. Run only by <see cref="NUnitIntegrationSuite"/>.
/// </summary>
public abstract class DeliberateLeakSuite : ConformanceTest
{
    [Test]
    public async Task Commits_a_row_on_a_connection_it_closes_from_outside_its_flow()
    {
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        Task commit;
        using (ExecutionContext.SuppressFlow())
        {
            commit = Task.Run(async () =>
            {
                var unpooled = database.Provider.ForDatabase(database.ConnectionString, null, "a-background-worker") + ";Pooling=false";
                await using var own = database.Provider.CreateConnection(unpooled);
                await own.OpenAsync();
                await using var command = own.CreateCommand();
                command.CommandText = "INSERT INTO items (name, quantity) VALUES ('leaked-by-a-closed-connection', 1)";
                await command.ExecuteNonQueryAsync();
            });
        }

        await commit;
        Assert.That(Scope.Bypasses, Is.Empty, "nothing ties the write to this test");
    }
}

/// <summary>
/// The NUnit integration seen from outside: a child test run of this assembly runs <see cref="DeliberateFailureSuite"/>;
/// its failed tests carry their SQL in their output, and nothing they wrote is left in the database.
/// </summary>
[CancelAfter(300_000)]
public abstract class NUnitIntegrationSuite
{
    /// <summary>The name of the sealed fixture derived from <see cref="DeliberateFailureSuite"/> in the test project.</summary>
    protected abstract string DeliberateFailureFixture { get; }

    [Test]
    public async Task Failed_tests_show_their_SQL_and_leave_nothing_behind()
    {
        var tag = $"d{Guid.NewGuid():N}"[..13];
        var results = Path.Combine(Path.GetTempPath(), $"testkit-child-{tag}");

        var (exitCode, log) = await RunChildAsync(DeliberateFailureFixture,
            ["--logger", "trx;LogFileName=child.trx", "--results-directory", results],
            new Dictionary<string, string> { [DeliberateFailureSuite.TagVariable] = tag });

        Assert.That(exitCode, Is.Not.Zero, "the child run reports its failures:\n" + log);
        var trx = XDocument.Load(Path.Combine(results, "child.trx"));
        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var tests = trx.Descendants(ns + "UnitTestResult").ToDictionary(r => (string)r.Attribute("testName")!, r => r);
        Assert.That(tests.Keys, Is.EquivalentTo(new[]
        {
            "Fails_after_writing", "Throws_inside_a_committed_application_transaction", "Writes_through_a_connection_of_its_own",
            "Reads_through_a_connection_of_its_own", "Waits_on_a_connection_of_its_own_for_a_row_its_scope_holds",
            "Fails_waiting_on_a_connection_of_its_own_for_a_row_its_scope_holds",
            "Is_marked_real_commits_in_a_class_that_is_no_database_test", "Writes_through_a_connection_string_the_application_made_itself",
            "Runs_a_statement_no_transaction_may_hold_on_a_connection_of_its_own",
            "First_test_of_a_class_whose_seed_fails", "Second_test_of_a_class_whose_seed_fails",
        }), log);

        string BypassMessage(string test)
        {
            var result = tests[test];
            tests.Remove(test);
            Assert.That((string?)result.Attribute("outcome"), Is.EqualTo("Failed"), $"{test}: a test that bypassed its scope fails");
            var message = (string?)result.Descendants(ns + "Message").SingleOrDefault() ?? string.Empty;
            Assert.That(message, Does.Contain("connected to the run's database on a connection of its own"), test);
            return message;
        }

        Assert.That(tests.Remove("Is_marked_real_commits_in_a_class_that_is_no_database_test", out var outside), Is.True, "the child run ran it too");
        Assert.That((string?)outside!.Attribute("outcome"), Is.EqualTo("Failed"));
        Assert.That((string?)outside.Descendants(ns + "Message").SingleOrDefault(), Does.Contain("does not derive from DatabaseTest").And.Contain("BeginRealCommitsAsync"));

        Assert.That(BypassMessage("Writes_through_a_connection_of_its_own"),
            Does.Contain("What it wrote is committed").And.Contain("wrote: INSERT INTO items").And.Contain("wrote: DELETE FROM items"));
        foreach (var seeded in new[] { "First_test_of_a_class_whose_seed_fails", "Second_test_of_a_class_whose_seed_fails" })
        {
            Assert.That(tests.Remove(seeded, out var result), Is.True);
            Assert.That((string?)result!.Attribute("outcome"), Is.EqualTo("Failed"), seeded);
            Assert.That((string?)result.Descendants(ns + "Message").SingleOrDefault(),
                Does.Contain("The class's seed (SeededDatabaseTest.SeedAsync) failed").And.Contain("the seed fails on purpose"), seeded);
        }

        Assert.That(tests.Remove("Runs_a_statement_no_transaction_may_hold_on_a_connection_of_its_own", out var outsideOnly), Is.True);
        Assert.That((string?)outsideOnly!.Attribute("outcome"), Is.EqualTo("Failed"));
        Assert.That((string?)outsideOnly.Descendants(ns + "Message").SingleOrDefault(),
            Does.Contain("runs it only outside a transaction, so it cannot run in the test's scope").And.Contain("[RealCommits]").And.Not.Contain("Scope.OpenConnection"));

        Assert.That(BypassMessage("Writes_through_a_connection_string_the_application_made_itself"),
            Does.Contain("What it wrote is committed").And.Contain("wrote: INSERT INTO items"));
        Assert.That(BypassMessage("Reads_through_a_connection_of_its_own"),
            Does.Contain("It only read").And.Contain("read: SELECT COUNT(*) FROM items").And.Not.Contain("committed and outlives"));
        var waited = tests["Waits_on_a_connection_of_its_own_for_a_row_its_scope_holds"];
        Assert.That(BypassMessage("Waits_on_a_connection_of_its_own_for_a_row_its_scope_holds"),
            Does.Contain("waited for a lock that the test's scope holds").And.Contain("failed: INSERT INTO items"));
        Assert.That(TimeSpan.Parse((string)waited.Attribute("duration")!, System.Globalization.CultureInfo.InvariantCulture), Is.LessThan(TimeSpan.FromSeconds(30)),
            "the wait for the scope's row ended within the lock wait limit, not with the test run's hang timeout");

        // The driver's error escaped the test: its failure keeps it and adds the kit's reading of it.
        var uncaught = (string?)tests["Fails_waiting_on_a_connection_of_its_own_for_a_row_its_scope_holds"].Descendants(ns + "Message").SingleOrDefault() ?? string.Empty;
        // SqlClient reports a command timeout as "Timeout", or, when its attention after the timeout finds the session gone
        // (a busy server), as "The connection is closed": either is the driver's own error.
        Assert.That(uncaught, Linq2DbTestKit.NUnit.TestRun.Database.Provider.Name == "postgres"
            ? Does.Contain("55P03")
            : Does.Contain("Timeout").Or.Contain("The connection is closed"), "the driver's error stays in the failure");
        Assert.That(BypassMessage("Fails_waiting_on_a_connection_of_its_own_for_a_row_its_scope_holds"),
            Does.Contain("waited for a lock that the test's scope holds").And.Contain("test scope ").And.Contain("failed: INSERT INTO items"));

        foreach (var (name, result) in tests)
        {
            Assert.That((string?)result.Attribute("outcome"), Is.EqualTo("Failed"), name);
            var stdout = (string?)result.Descendants(ns + "StdOut").SingleOrDefault() ?? string.Empty;
            Assert.That(stdout, Does.Contain("SQL of test scope").And.Contain("INSERT INTO").And.Contain(tag).And.Contain("ROLLBACK"),
                $"{name} shows the SQL it ran in its output");
        }

        Assert.That(await Outside.CountItemsAsync(tag), Is.Zero, "what the failed tests wrote was rolled back");
        Directory.Delete(results, recursive: true);
    }

    /// <summary>The name of the sealed fixture derived from <see cref="DeliberateLeakSuite"/> in the test project.</summary>
    protected abstract string DeliberateLeakFixture { get; }

    [Test]
    public async Task A_row_committed_on_a_connection_closed_before_the_test_ended_fails_the_run_naming_the_table()
    {
        var (exitCode, log) = await RunChildAsync(DeliberateLeakFixture, ["--logger", "console;verbosity=normal"], new Dictionary<string, string>());

        Assert.That(exitCode, Is.Not.Zero, "the child run fails:\n" + log);
        Assert.That(log, Does.Contain("Data persisted in the run's database after the tests")
            .And.Match(@"items\]?: 0 rows before, 1 row now")
            .And.Contain("after Linq2DbTestKit.Tests.DeliberateLeak"));
    }

    /// <summary>The name shared by the sealed fixtures derived from <see cref="ContendedSeedSuite"/> in the test project.</summary>
    protected abstract string ContendedSeedFixtures { get; }

    [TestCase(2)]
    [TestCase(8)]
    public async Task Seeded_classes_that_contend_for_one_key_end_with_every_test_passed_however_many_workers_run_them(int workers)
    {
        var tag = $"c{Guid.NewGuid():N}"[..13];
        var results = Path.Combine(Path.GetTempPath(), $"testkit-child-{tag}");

        // Every class's seed waits for the classes before it to end: on a server slower per statement (SQL Server's
        // protocol on Babelfish) fewer classes, and a command timeout that outlasts the waits of a busy machine. The
        // watchdog still fails a child that hangs.
        var database = Linq2DbTestKit.NUnit.TestRun.Database;
        var instances = database.Provider.Name == "postgres" ? 20 : 6;
        var (exitCode, log) = await RunChildAsync(ContendedSeedFixtures,
            ["--logger", "trx;LogFileName=child.trx", "--results-directory", results, "--", $"NUnit.NumberOfTestWorkers={workers}"],
            new Dictionary<string, string>
            {
                [DeliberateFailureSuite.TagVariable] = tag,
                [ContendedSeedSuite.InstancesVariable] = instances.ToString(System.Globalization.CultureInfo.InvariantCulture),
                [database.Provider.ConnectionVariable] = database.ServerConnectionString.TrimEnd(';') + ";Command Timeout=300",
            },
            limit: TimeSpan.FromMinutes(6));

        Assert.That(exitCode, Is.Zero, "every test passed:\n" + log);
        var trx = XDocument.Load(Path.Combine(results, "child.trx"));
        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var outcomes = trx.Descendants(ns + "UnitTestResult").Select(r => (string?)r.Attribute("outcome")).ToList();
        Assert.That(outcomes, Has.Count.EqualTo(2 * instances * 5).And.All.EqualTo("Passed"), $"two classes, {instances} instances each, 5 tests each");
        Directory.Delete(results, recursive: true);
    }

    /// <summary>Runs the tests of <paramref name="fixture"/> in a child <c>dotnet test</c> of this test project; its exit code and what it printed.</summary>
    /// <param name="limit">How long the child may run before it is stopped and the test fails: a hang fails, it never hangs the run.</param>
    async Task<(int ExitCode, string Log)> RunChildAsync(string fixture, string[] arguments, Dictionary<string, string> environment, TimeSpan? limit = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "test", GetType().Assembly.Location, "--filter", $"FullyQualifiedName~{fixture}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);

        // The child works on this run's server, even when the kit started it for this run.
        start.Environment[Linq2DbTestKit.NUnit.TestRun.Database.Provider.ConnectionVariable] = Linq2DbTestKit.NUnit.TestRun.Database.ServerConnectionString;
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var errors = child.StandardError.ReadToEndAsync();
        using var watchdog = new CancellationTokenSource(limit ?? TimeSpan.FromMinutes(5));
        try
        {
            await child.WaitForExitAsync(watchdog.Token);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"The child test run of {fixture} did not end within {(limit ?? TimeSpan.FromMinutes(5)).TotalMinutes} minutes: it hangs.");
        }

        return (child.ExitCode, await output + await errors);
    }
}
