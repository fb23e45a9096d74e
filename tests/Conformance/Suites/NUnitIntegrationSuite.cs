using System.Diagnostics;
using System.Xml.Linq;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
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
        var assembly = GetType().Assembly.Location;

        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "test", assembly, "--filter", $"FullyQualifiedName~{DeliberateFailureFixture}", "--logger", "trx;LogFileName=child.trx", "--results-directory", results },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { [DeliberateFailureSuite.TagVariable] = tag },
        };
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var errors = child.StandardError.ReadToEndAsync();
        await child.WaitForExitAsync();
        var log = await output + await errors;

        Assert.That(child.ExitCode, Is.Not.Zero, "the child run reports its failures:\n" + log);
        var trx = XDocument.Load(Path.Combine(results, "child.trx"));
        XNamespace ns = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010";
        var tests = trx.Descendants(ns + "UnitTestResult").ToDictionary(r => (string)r.Attribute("testName")!, r => r);
        Assert.That(tests.Keys, Is.EquivalentTo(new[] { "Fails_after_writing", "Throws_inside_a_committed_application_transaction", "Writes_through_a_connection_of_its_own" }), log);

        var bypass = tests["Writes_through_a_connection_of_its_own"];
        tests.Remove("Writes_through_a_connection_of_its_own");
        Assert.That((string?)bypass.Attribute("outcome"), Is.EqualTo("Failed"), "a test that bypassed its scope fails");
        Assert.That((string?)bypass.Descendants(ns + "Message").SingleOrDefault(),
            Does.Contain("connected to the run's database with TestRun.Database.ConnectionString").And.Contain("What it wrote is committed")
                .And.Contain("wrote: INSERT INTO items").And.Contain("wrote: DELETE FROM items"));

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
}
