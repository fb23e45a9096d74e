using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;

namespace Consumer.Tests.Database;

/// <summary>
/// Commits a row outside every test's scope, as a careless [OneTimeSetUp] would: the run's leak check must fail the run,
/// so that dotnet test exits non-zero. Run only by tests/Consumer/run, on its own.
/// </summary>
[Explicit("commits a row on purpose; tests/Consumer/run runs it on its own")]
public sealed class DeliberateLeak : DatabaseTest
{
    [OneTimeSetUp]
    public async Task CommitsOutsideEveryScope()
    {
        await using var db = new DataConnection(Run.AppOptions(TestRun.Database.ConnectionString));
        await db.ExecuteAsync("INSERT INTO counters (name) VALUES ('leaked by a one-time set-up')");
    }

    [Test]
    public void Passes() => Assert.Pass();
}
