using Linq2DbTestKit;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using Linq2DbTestKit.SqlServer;
using NotesApi.Testing;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.All)]
[assembly: FixtureLifeCycle(LifeCycle.InstancePerTestCase)]

namespace NotesApi.Tests;

/// <summary>
/// The run of the tests in this namespace: the kit creates the run's database, and the application starts on it before
/// the first test, so that what its start-up does (DbUp's migrations, the default tag) is part of every test's world.
/// </summary>
[SetUpFixture]
public sealed class NotesRun() : TestRun(TestKitEnvironment.SelectedProvider() == "sqlserver" ? SqlServerDatabaseProvider.Instance : PostgreSqlDatabaseProvider.Instance)
{
    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        NotesApp.Start(database);
        return Task.CompletedTask;
    }

    [OneTimeTearDown]
    public static async Task StopTheApplication() => await NotesApp.StopAsync();
}
